package vpp

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/cnierr"
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
	if err = os.MkdirAll(conf.StateDir, 0o755); err != nil {
		return cnierr.Unavailable("state dir %q: %w", conf.StateDir, err)
	}
	if err = unix.Access(conf.StateDir, unix.W_OK); err != nil {
		return cnierr.Unavailable("state dir %q not writable: %w", conf.StateDir, err)
	}
	if conf.IPAM.Type != "" {
		if err = ipamDelegate(conf, args.StdinData).Status(ctx); err != nil {
			return cnierr.Unavailable("%w", err)
		}
	}
	return nil
}
