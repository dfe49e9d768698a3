package sriov

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Del implements CNI DEL. It is idempotent. With a record it undoes the
// attachment (see teardown); without one (no ADD, a second DEL) it touches
// no VF, whatever deviceID the config names, and only releases IPAM.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	if err = plugin.ValidateArgs(args.ContainerID, args.IfName); err != nil {
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
		log.Warn("unreadable record", "err", err)
	}
	if rec != nil {
		err = teardownRecord(rec, log)
		if err == nil {
			log.Info("DEL done")
		}
		return err
	}
	log.Info("no record: nothing to restore on any VF")
	if err := hint.Remove(conf.StateDir, args.ContainerID, args.IfName); err != nil {
		return err
	}
	if conf.IPAM.Type == "" {
		return nil
	}
	key := ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
	return ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.Del(context.Background(), key)
}
