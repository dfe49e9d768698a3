package vpp

import (
	"context"
	"fmt"
	"slices"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// check is vm-vpp's CHECK, after the engine's (complete record, hint
// carried by prevResult, IPAM CHECK): in VPP the tagged interface exists,
// is admin up, has the MTU and is, in l2, a member of the bridge domain,
// in l3 unnumbered to the network's gateway loopback. The loopback's
// addresses and the host routes are not re-read.
func check(_ context.Context, c *plugin.Checking[*NetConf, state]) error {
	return checkVPP(clientOf(c.Conn), c.Conf.Name, c.State, c.Hint)
}

func checkVPP(c *vppapi.Client, network string, st *state, h *hint.Hint) error {
	ifs, err := c.Interfaces()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ifs, func(i vppapi.Interface) bool { return i.Tag == st.Tag })
	if i < 0 {
		return fmt.Errorf("VPP has no interface tagged %q", st.Tag)
	}
	iface := ifs[i]
	if !iface.AdminUp {
		return fmt.Errorf("VPP interface %q is admin down", iface.Name)
	}
	if h.Guest.MTU != 0 && iface.MTU != uint32(h.Guest.MTU) {
		return fmt.Errorf("VPP interface %q has MTU %d, want %d", iface.Name, iface.MTU, h.Guest.MTU)
	}
	if st.Network == NetworkL3 {
		return checkL3(c, network, ifs, iface)
	}
	bd, err := c.BridgeDomain(st.BridgeDomain)
	if err != nil {
		return err
	}
	if bd == nil || !slices.Contains(bd.Members, iface.Index) {
		return fmt.Errorf("VPP interface %q is not in bridge domain %d", iface.Name, st.BridgeDomain)
	}
	return nil
}

// checkL3 checks iface is unnumbered to network's gateway loopback.
func checkL3(c *vppapi.Client, network string, ifs []vppapi.Interface, iface vppapi.Interface) error {
	users, err := c.Unnumbered()
	if err != nil {
		return err
	}
	source, ok := users[iface.Index]
	if !ok {
		return fmt.Errorf("VPP interface %q is not unnumbered (it has no gateway address)", iface.Name)
	}
	if !slices.ContainsFunc(ifs, func(i vppapi.Interface) bool { return i.Index == source && i.Tag == GatewayTag(network) }) {
		return fmt.Errorf("VPP interface %q is unnumbered to sw_if_index %d, not to the gateway loopback tagged %q",
			iface.Name, source, GatewayTag(network))
	}
	return nil
}
