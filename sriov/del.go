package sriov

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/ipam"
	"github.com/vmcni/vmcni/pkg/logging"
	"github.com/vmcni/vmcni/pkg/store"
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
	if err = validateArgs(args.ContainerID, args.IfName); err != nil {
		return err
	}
	log, closeLog := logging.Open(conf.Config, "plugin", PluginName, "cmd", "DEL",
		"container", args.ContainerID, "ifname", args.IfName)
	defer closeLog()

	st := store.New(conf.StateDir)
	lock, err := st.Lock(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	defer lock.Unlock(true)

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
