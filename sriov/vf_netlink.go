package sriov

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
)

// netlinkVFs is the production VFController: netlink requests on the PF
// netdev in the calling thread's netns (the host's).
type netlinkVFs struct{}

func (netlinkVFs) pf(name string) (netlink.Link, error) { return link.ByName(name) }

// VF implements VFController.
func (n netlinkVFs) VF(pf string, vf int) (VFState, error) {
	l, err := n.pf(pf)
	if err != nil {
		return VFState{}, err
	}
	for _, v := range l.Attrs().Vfs {
		if v.ID != vf {
			continue
		}
		s := VFState{
			MAC: noMAC, Vlan: v.Vlan, QoS: v.Qos, VlanProto: uint16(v.VlanProto),
			Spoofchk: v.Spoofchk, Trust: v.Trust == 1, LinkState: v.LinkState,
			MinTxRate: int(v.MinTxRate), MaxTxRate: int(v.MaxTxRate),
		}
		if len(v.Mac) == 6 {
			s.MAC = v.Mac.String()
		}
		return s, nil
	}
	return VFState{}, fmt.Errorf("PF %q reports no VF %d", pf, vf)
}

func (n netlinkVFs) do(pf string, what string, vf int, fn func(netlink.Link) error) error {
	l, err := n.pf(pf)
	if err != nil {
		return err
	}
	if err := fn(l); err != nil {
		return fmt.Errorf("set %s of VF %d on PF %q: %w", what, vf, pf, err)
	}
	return nil
}

// SetMAC implements VFController.
func (n netlinkVFs) SetMAC(pf string, vf int, mac net.HardwareAddr) error {
	return n.do(pf, "mac", vf, func(l netlink.Link) error { return netlink.LinkSetVfHardwareAddr(l, vf, mac) })
}

// SetVlan implements VFController.
func (n netlinkVFs) SetVlan(pf string, vf, vlan, qos int, proto uint16) error {
	return n.do(pf, "vlan", vf, func(l netlink.Link) error {
		return netlink.LinkSetVfVlanQosProto(l, vf, vlan, qos, int(proto))
	})
}

// SetSpoofchk implements VFController.
func (n netlinkVFs) SetSpoofchk(pf string, vf int, on bool) error {
	return n.do(pf, "spoofchk", vf, func(l netlink.Link) error { return netlink.LinkSetVfSpoofchk(l, vf, on) })
}

// SetTrust implements VFController.
func (n netlinkVFs) SetTrust(pf string, vf int, on bool) error {
	return n.do(pf, "trust", vf, func(l netlink.Link) error { return netlink.LinkSetVfTrust(l, vf, on) })
}

// SetLinkState implements VFController.
func (n netlinkVFs) SetLinkState(pf string, vf int, state uint32) error {
	return n.do(pf, "link_state", vf, func(l netlink.Link) error { return netlink.LinkSetVfState(l, vf, state) })
}

// SetRate implements VFController.
func (n netlinkVFs) SetRate(pf string, vf, minRate, maxRate int) error {
	return n.do(pf, "tx rates", vf, func(l netlink.Link) error { return netlink.LinkSetVfRate(l, vf, minRate, maxRate) })
}
