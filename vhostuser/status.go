package vhostuser

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/cnierr"
	"github.com/vmcni/vmcni/pkg/ipam"
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
	if err = os.MkdirAll(conf.SocketDir, 0o755); err != nil {
		return cnierr.Unavailable("socketDir %q: %w", conf.SocketDir, err)
	}
	if err = unix.Access(conf.SocketDir, unix.W_OK); err != nil {
		return cnierr.Unavailable("socketDir %q not writable: %w", conf.SocketDir, err)
	}
	if conf.IPAM.Type != "" {
		if err = (ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}).Status(ctx); err != nil {
			return cnierr.Unavailable("%w", err)
		}
	}
	return nil
}
