package sriov

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
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
	if err := plugin.WritableDir("state dir", conf.StateDir); err != nil {
		return err
	}
	if conf.IPAM.Type != "" {
		return plugin.IPAMReady(context.Background(), ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData})
	}
	return nil
}
