package vhostuser

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
)

// Status implements CNI STATUS: code 50 when the backend is unreachable (OVS
// down, bridge missing), the socket directory cannot be written, or IPAM is
// not ready.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	if err = p.newSwitch(conf).Ready(ctx); err != nil {
		return cnierr.Unavailable("%w", err)
	}
	if err = plugin.WritableDir("socketDir", conf.SocketDir); err != nil {
		return err
	}
	if conf.IPAM.Type != "" {
		return plugin.IPAMReady(ctx, ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData})
	}
	return nil
}
