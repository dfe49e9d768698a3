package vhostuser

import (
	"context"
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
)

// Del implements CNI DEL: idempotent and best effort. Without a record it
// removes what the names derived from (containerID, ifname) point at.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, paths, at, err := open(args, "DEL")
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	defer at.Close(true)

	s := &state{Paths: paths, DeviceInfoFile: conf.RuntimeConfig.DeviceInfoFile}
	if conf.Backend == BackendOVSDPDK {
		s.Port = portName(args.ContainerID, args.IfName)
	}
	if rec, gerr := st.Get(args.ContainerID, args.IfName); gerr == nil && rec != nil {
		if recorded, serr := stateOf(rec); serr == nil {
			s = recorded
		}
	}
	t := &teardown{conf: conf, st: s, sw: p.newSwitch(conf), store: st, log: log,
		key: ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}}
	return t.run(context.Background())
}

// teardown removes one attachment, best effort, joining the errors.
type teardown struct {
	conf  *NetConf
	st    *state
	sw    Switch
	store *store.Store
	log   *slog.Logger
	key   ipam.Attachment
}

func (t *teardown) run(ctx context.Context) error {
	td := plugin.BeginTeardown(t.log, t.conf.StateDir, t.key.ContainerID, t.key.IfName, t.st.DeviceInfoFile)
	if t.st.Port != "" {
		td.Step(t.sw.DelPort(ctx, t.st.Port))
	}
	if t.st.Dir != "" {
		td.Step(os.RemoveAll(t.st.Dir))
	}
	if t.conf.IPAM.Type != "" {
		td.Step(ipam.Delegate{Type: t.conf.IPAM.Type, Config: t.conf.Raw}.Del(ctx, t.key))
	}
	return td.Finish(t.store, t.key.ContainerID, t.key.IfName)
}

// teardownRecord deletes a recorded attachment (GC, interrupted ADD).
func (p *Plugin) teardownRecord(rec *store.Record, log *slog.Logger) error {
	conf, err := ParseConfig(rec.Config)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	t := &teardown{conf: conf, st: st, sw: p.newSwitch(conf), store: store.New(conf.StateDir), log: log,
		key: ipam.Attachment{ContainerID: rec.ContainerID, Netns: rec.Netns, IfName: rec.IfName, Args: rec.Args}}
	return t.run(context.Background())
}

// open is ADD's and DEL's common start: parse and validate the config,
// check the attachment's paths, and take the attachment's lock.
func open(args *skel.CmdArgs, cmd string) (*NetConf, Paths, *plugin.Attachment, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, Paths{}, nil, err
	}
	if err = conf.Validate(); err != nil {
		return nil, Paths{}, nil, err
	}
	paths, err := PathsFor(conf.SocketDir, args.ContainerID, args.IfName)
	if err != nil {
		return nil, Paths{}, nil, err
	}
	at, err := plugin.OpenAttachment(PluginName, cmd, conf.Config, conf.StateDir, args)
	if err != nil {
		return nil, Paths{}, nil, err
	}
	return conf, paths, at, nil
}
