package bridgetap

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
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
	if err := plugin.WritableDir("state dir", conf.StateDir); err != nil {
		return err
	}
	if conf.IPAM.Type != "" { // STATUS never carries prevResult: chained configs have no ipam
		return plugin.IPAMReady(context.Background(), ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData})
	}
	return nil
}
