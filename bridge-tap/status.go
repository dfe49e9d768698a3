package bridgetap

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/cnierr"
	"github.com/vmcni/vmcni/pkg/ipam"
)

// Status implements CNI STATUS: ADD can succeed when /dev/net/tun can be
// opened, the state dir is writable and (standalone) the IPAM plugin reports
// ready. Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err := conf.Validate(); err != nil {
		return err
	}
	if conf.Mode != ModeMacvtap {
		f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
		if err != nil {
			return cnierr.Unavailable("tap devices unavailable: %w", err)
		}
		_ = f.Close()
	}
	if err := os.MkdirAll(conf.StateDir, 0o755); err != nil {
		return cnierr.Unavailable("state dir %q: %w", conf.StateDir, err)
	}
	if err := unix.Access(conf.StateDir, unix.W_OK); err != nil {
		return cnierr.Unavailable("state dir %q not writable: %w", conf.StateDir, err)
	}
	if conf.IPAM.Type != "" { // STATUS never carries prevResult: chained configs have no ipam
		if err := (ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}).Status(context.Background()); err != nil {
			return cnierr.Unavailable("%w", err)
		}
	}
	return nil
}
