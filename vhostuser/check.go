package vhostuser

import (
	"context"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Check implements CNI CHECK: record, hint and result agree, the directory
// has its mode, the OVS port exists on the bridge, IPAM CHECK passes.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	if conf.Prev == nil {
		return cnierr.Config("CHECK needs prevResult")
	}
	rec, err := store.New(conf.StateDir).GetComplete(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	h, err := hint.Read(conf.StateDir, args.ContainerID, args.IfName)
	if err != nil {
		return fmt.Errorf("hint: %w", err)
	}
	if err = hint.CheckResult(conf.Prev, h); err != nil {
		return err
	}
	fi, err := os.Stat(st.Dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if uint32(fi.Mode().Perm()) != conf.mode {
		return fmt.Errorf("socket directory %q has mode %o, want %o", st.Dir, fi.Mode().Perm(), conf.mode)
	}
	ctx := context.Background()
	if st.Port != "" {
		ports, err := p.newSwitch(conf).Ports(ctx, conf.Name)
		if err != nil {
			return err
		}
		found := false
		for _, port := range ports {
			found = found || port.Name == st.Port
		}
		if !found {
			return fmt.Errorf("OVS port %q is missing", st.Port)
		}
	}
	if conf.IPAM.Type != "" {
		a := ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
		return ipam.Delegate{Type: conf.IPAM.Type, Config: args.StdinData}.Check(ctx, a)
	}
	return nil
}
