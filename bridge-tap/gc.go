package bridgetap

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
)

// GC implements CNI GC: every vm-bridge attachment of this network that is
// not in the valid list is deleted as DEL would, then GC is forwarded to the
// IPAM plugin (standalone only).
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	spec := plugin.GCSpec{
		Plugin: PluginName, Network: conf.Name, StateDir: conf.StateDir, LogCfg: conf.Config, Stdin: args.StdinData,
		Teardown: p.teardownRecord,
	}
	if !conf.Chained() {
		spec.IPAM = conf.IPAM.Type
	}
	return plugin.RunGC(context.Background(), spec)
}
