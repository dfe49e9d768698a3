package vpp

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
)

// Status implements CNI STATUS: ADD can succeed when VPP answers on its API
// socket within the timeout with every binapi message the config needs, the
// state dir is writable and the IPAM plugin (if any) reports ready.
// Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	client, err := p.dial(ctx, conf)
	if err != nil {
		return statusError(err)
	}
	client.Close()
	if err = plugin.WritableDir("state dir", conf.StateDir); err != nil {
		return err
	}
	if conf.IPAM.Type != "" {
		return plugin.IPAMReady(ctx, ipamDelegate(conf, args.StdinData))
	}
	return nil
}
