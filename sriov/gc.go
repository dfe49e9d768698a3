package sriov

import (
	"context"
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

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

	st := store.New(conf.StateDir)
	records, err := st.List(conf.Name)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range records {
		if rec.Plugin != PluginName || valid[types.GCAttachment{ContainerID: rec.ContainerID, IfName: rec.IfName}] {
			continue
		}
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		errs = append(errs, collect(st, rec, log))
	}
	if conf.IPAM.Type != "" {
		errs = append(errs, ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.GC(context.Background()))
	}
	return errors.Join(errs...)
}

// collect deletes one stale attachment under its lock, re-reading the
// record there (a DEL may have run meanwhile).
func collect(st *store.Store, rec *store.Record, log *slog.Logger) error {
	lock, err := st.Lock(rec.ContainerID, rec.IfName)
	if err != nil {
		return err
	}
	defer lock.Unlock(true)
	fresh, err := st.Get(rec.ContainerID, rec.IfName)
	if err != nil || fresh == nil {
		return err
	}
	return teardownRecord(fresh, log.With("container", rec.ContainerID, "ifname", rec.IfName))
}
