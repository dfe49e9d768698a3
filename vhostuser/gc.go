package vhostuser

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/ipam"
	"github.com/vmcni/vmcni/pkg/logging"
	"github.com/vmcni/vmcni/pkg/plugin"
	"github.com/vmcni/vmcni/pkg/store"
)

// GC implements CNI GC: records of this network not in the valid list are
// deleted as DEL would; OVS ports tagged with this network whose attachment
// is not valid are deleted too (ports left by a crash before the record was
// updated, or by a lost state dir); GC is forwarded to IPAM.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
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
	errs := []error{store.New(conf.StateDir).CollectStale(conf.Name, PluginName, valid, func(rec *store.Record) error {
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		return p.teardownRecord(rec, log)
	})}
	sw := p.newSwitch(conf)
	ports, err := sw.Ports(ctx, conf.Name)
	errs = append(errs, err)
	for _, port := range ports {
		if !valid[types.GCAttachment{ContainerID: port.ContainerID, IfName: port.IfName}] {
			log.Info("deleting stale OVS port", "port", port.Name)
			errs = append(errs, sw.DelPort(ctx, port.Name))
		}
	}
	if conf.IPAM.Type != "" {
		errs = append(errs, ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.GC(ctx))
	}
	return errors.Join(errs...)
}
