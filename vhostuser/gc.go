package vhostuser

import (
	"context"
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/plugin"
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
	return plugin.RunGC(context.Background(), plugin.GCSpec{
		Plugin: PluginName, Network: conf.Name, StateDir: conf.StateDir, LogCfg: conf.Config, Stdin: args.StdinData,
		IPAM: conf.IPAM.Type, Teardown: p.teardownRecord,
		Sweep: func(ctx context.Context, valid map[types.GCAttachment]bool, log *slog.Logger) error {
			sw := p.newSwitch(conf)
			ports, err := sw.Ports(ctx, conf.Name)
			errs := []error{err}
			for _, port := range ports {
				if !valid[types.GCAttachment{ContainerID: port.ContainerID, IfName: port.IfName}] {
					log.Info("deleting stale OVS port", "port", port.Name)
					errs = append(errs, sw.DelPort(ctx, port.Name))
				}
			}
			return errors.Join(errs...)
		},
	})
}
