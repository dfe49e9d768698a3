package sriov

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/cnierr"
	"github.com/vmcni/vmcni/pkg/ipam"
)

// Status implements CNI STATUS: ADD can succeed when sysfsRoot has
// sys/bus/pci (and, in vfio mode, dev/vfio), the state dir is writable and
// the IPAM plugin, if any, reports ready. Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err := conf.Validate(); err != nil {
		return err
	}
	fs := RootFS{Root: conf.SysfsRoot}
	if !fs.Exists("sys/bus/pci") {
		return cnierr.Unavailable("no PCI bus at %q", fs.Path("sys/bus/pci"))
	}
	if conf.Mode == ModeVFIO && !fs.Exists("dev/vfio") {
		return cnierr.Unavailable("no VFIO at %q (vfio-pci module not loaded?)", fs.Path("dev/vfio"))
	}
	if err := os.MkdirAll(conf.StateDir, 0o755); err != nil {
		return cnierr.Unavailable("state dir %q: %w", conf.StateDir, err)
	}
	if err := unix.Access(conf.StateDir, unix.W_OK); err != nil {
		return cnierr.Unavailable("state dir %q not writable: %w", conf.StateDir, err)
	}
	if conf.IPAM.Type != "" {
		if err := (ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}).Status(context.Background()); err != nil {
			return cnierr.Unavailable("%w", err)
		}
	}
	return nil
}
