package sriov

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/pkg/ipam"
	"github.com/vmcni/vmcni/pkg/logging"
	"github.com/vmcni/vmcni/pkg/plugin"
	"github.com/vmcni/vmcni/pkg/store"
)

// GC implements CNI GC: every vm-sriov attachment of this network that is
// not in the valid list is deleted as DEL would (VF restored when the
// attachment still owns it), then GC is forwarded to the IPAM plugin.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := logging.Open(conf.Config, "plugin", PluginName, "cmd", "GC", "network", conf.Name)
	defer closeLog()

	errs := []error{store.New(conf.StateDir).CollectStale(conf.Name, PluginName, valid, func(rec *store.Record) error {
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		return teardownRecord(rec, log.With("container", rec.ContainerID, "ifname", rec.IfName))
	})}
	if conf.IPAM.Type != "" {
		errs = append(errs, ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.GC(context.Background()))
	}
	return errors.Join(errs...)
}
