package sriov

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-sriov"

// Plugin runs vm-sriov's CNI commands on the plugin engine.
type Plugin struct {
	*plugin.Engine[*NetConf, state]
	// vfs returns the PF-side controller for a sysfs root: netlink, unless
	// a test injected another (WithVFController).
	vfs func(sysfsRoot string) VFController
}

// New returns the plugin; opts are the engine's test seams (stdout, fault
// injection).
func New(opts ...plugin.Option) *Plugin {
	p := &Plugin{vfs: func(string) VFController { return netlinkVFs{} }}
	p.Engine = plugin.New(plugin.Spec[*NetConf, state]{
		Name:     PluginName,
		Parse:    ParseConfig,
		Admit:    admit,
		Add:      p.add,
		Assume:   assume,
		Teardown: p.teardown,
		Busy:     busy,
		Check:    p.check,
		Status:   status,
	}, opts...)
	return p
}

// WithVFController replaces the PF-side VF controller (tests: the
// simulated PF of package sriovsim) and returns p.
func (p *Plugin) WithVFController(fn func(sysfsRoot string) VFController) *Plugin {
	p.vfs = fn
	return p
}

// admit is what only ADD requires: netdev mode moves the VF into the pod
// netns, which must exist.
func admit(conf *NetConf, args *skel.CmdArgs) error {
	if conf.Mode == ModeNetdev && !netns.Exists(args.Netns) {
		return cnierr.Env("CNI_NETNS %q is not a network namespace", args.Netns)
	}
	return nil
}

// status is STATUS's own check: sysfsRoot has sys/bus/pci and, in vfio
// mode, dev/vfio (code 50 otherwise).
func status(_ context.Context, conf *NetConf) error {
	fs := RootFS{Root: conf.SysfsRoot}
	if !fs.Exists("sys/bus/pci") {
		return cnierr.Unavailable("no PCI bus at %q", fs.Path("sys/bus/pci"))
	}
	if conf.Mode == ModeVFIO && !fs.Exists("dev/vfio") {
		return cnierr.Unavailable("no VFIO at %q (vfio-pci module not loaded?)", fs.Path("dev/vfio"))
	}
	return nil
}
