package sriov

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
)

// GC implements CNI GC: every vm-sriov attachment of this network that is
// not in the valid list is deleted as DEL would (VF restored when the
// attachment still owns it), then GC is forwarded to the IPAM plugin.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	return plugin.RunGC(context.Background(), plugin.GCSpec{
		Plugin: PluginName, Network: conf.Name, StateDir: conf.StateDir, LogCfg: conf.Config, Stdin: args.StdinData,
		IPAM: conf.IPAM.Type, Teardown: teardownRecord,
	})
}
