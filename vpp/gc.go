package vpp

import (
	"context"
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// GC implements CNI GC. It deletes, as DEL would, every vm-vpp attachment
// record of this network not in the valid list; then it dumps VPP's
// interfaces and deletes those tagged for this network whose attachment is
// neither valid nor recorded (leftovers of lost records), in l3 after
// their host routes (found by dumping routes) and unnumbered setting.
// Untagged interfaces, other networks' and the l3 gateway loopback never
// match. Finally GC is forwarded to the IPAM plugin.
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

	ctx := context.Background()
	client, err := p.dialForCleanup(ctx, conf, log)
	if err != nil {
		return err
	}
	if client != nil {
		defer client.Close()
	}
	st := store.New(conf.StateDir)
	errs := []error{st.CollectStale(conf.Name, PluginName, valid, func(rec *store.Record) error {
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		return p.teardownRecord(ctx, client, rec, log.With("container", rec.ContainerID, "ifname", rec.IfName))
	})}
	if client != nil {
		errs = append(errs, sweep(client, conf, st, valid, log))
	}
	if conf.IPAM.Type != "" {
		errs = append(errs, ipamDelegate(conf, args.StdinData).GC(ctx))
	}
	return errors.Join(errs...)
}

// sweep deletes the VPP interfaces tagged for conf's network whose
// attachment is neither valid nor recorded. Records are listed after the
// dump: an ADD writes its record before it creates its interface, so an ADD
// in progress is never swept.
func sweep(c *vppapi.Client, conf *NetConf, st *store.Store, valid map[types.GCAttachment]bool, log *slog.Logger) error {
	ifs, err := c.Interfaces()
	if err != nil {
		return err
	}
	records, err := st.List(conf.Name)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for a := range valid {
		keep[attachmentHash(a.ContainerID, a.IfName)] = true
	}
	for _, rec := range records {
		keep[attachmentHash(rec.ContainerID, rec.IfName)] = true
	}
	network := networkHash(conf.Name)
	var stale []vppapi.Interface
	for _, i := range ifs {
		if t, ok := parseTag(i.Tag); ok && t.network == network && !keep[t.attachment] {
			stale = append(stale, i)
		}
	}
	var errs []error
	if conf.Network == NetworkL3 {
		errs = append(errs, detachL3(c, indexes(stale), nil, false, log))
	}
	memifs := map[uint32]bool{}
	for _, i := range stale {
		if interfaceKind(i, conf.Interface) == InterfaceMemif {
			memifs[i.Index] = true
			continue
		}
		log.Info("deleting stale VPP vhost-user interface", "sw_if_index", i.Index, "tag", i.Tag)
		if err := c.DeleteVhostUser(i.Index); err != nil {
			errs = append(errs, err)
		}
	}
	if len(memifs) > 0 {
		errs = append(errs, removeMemifs(c, memifs, "", log))
	}
	return errors.Join(errs...)
}
