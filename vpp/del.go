package vpp

import (
	"context"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// Del implements CNI DEL. It is idempotent: without a record (no ADD, or a
// second DEL) it derives the tag, socket paths and IPAM from the config and
// removes whatever still exists. When VPP is not running its objects are
// gone and only local state is cleaned; when VPP is there but not ready,
// DEL fails with code 11 and keeps its record so a retry finishes the job.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	pth, err := socketPaths(conf, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	at, err := plugin.OpenAttachment(PluginName, "DEL", conf.Config, conf.StateDir, args)
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	defer at.Close(true)

	rec, err := st.Get(args.ContainerID, args.IfName)
	if err != nil {
		log.Warn("unreadable record, deleting by name", "err", err)
	}
	var s *state
	recorded := false
	if rec != nil {
		if s, err = stateOf(rec); err != nil {
			log.Warn("unreadable record state, deleting by name", "err", err)
		}
		recorded = s != nil
	}
	if s == nil {
		s = &state{
			Interface: conf.Interface, Network: conf.Network, Tag: Tag(conf.Name, args.ContainerID, args.IfName),
			SocketDir: pth.Dir, Socket: pth.Socket, IPAM: conf.IPAM.Type,
		}
	}
	if s.DeviceInfoFile == "" {
		s.DeviceInfoFile = conf.RuntimeConfig.DeviceInfoFile
	}
	ctx := context.Background()
	client, err := p.dialForCleanup(ctx, conf, log)
	if err != nil {
		return err
	}
	if client != nil {
		defer client.Close()
	}
	t := &teardown{
		conf: conf, st: s, log: log, store: st, vpp: client, recorded: recorded,
		key: ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args},
	}
	if err = t.run(ctx); err == nil {
		log.Info("DEL done")
	}
	return err
}

// dialForCleanup connects for DEL and GC. A nil client and nil error mean
// VPP is not running, so nothing of it is left to delete.
func (p *Plugin) dialForCleanup(ctx context.Context, conf *NetConf, log *slog.Logger) (*vppapi.Client, error) {
	client, err := p.dial(ctx, conf)
	if err == nil {
		return client, nil
	}
	if vppGone(err) {
		log.Warn("VPP is not running: its objects are gone, cleaning local state only", "err", err)
		return nil, nil
	}
	return nil, addError(err)
}
