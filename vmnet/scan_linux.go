package vmnet

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/pkg/hint"
)

// PlanFromNetns is the last-resort input, for runtimes that have neither the
// CNI result nor the hint files: it scans the netns at nsPath the way Kata
// does. Every tap and macvtap that carries a vmcni alias (hint.AliasPrefix)
// becomes a NIC; its guest MAC and queues come from the alias, its
// addresses, routes and MTU from the pod interface it is wired to (the veth
// whose ingress redirects to the tap, the tap's bridge sibling, or the
// macvtap's parent). DNS cannot be recovered this way. Unlike the rest of
// the package it enters the netns, so it needs CAP_SYS_ADMIN.
func PlanFromNetns(nsPath string) (*Plan, error) {
	p := &Plan{}
	err := netns.Do(nsPath, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Name < links[j].Attrs().Name })
		for _, l := range links {
			alias, ok := hint.ParseDeviceAlias(l.Attrs().Alias)
			if !ok {
				continue
			}
			nic, err := scanDevice(l, links, alias, nsPath)
			if err != nil {
				return err
			}
			p.NICs = append(p.NICs, nic)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range p.NICs {
		if p.NICs[i].Kind == hint.KindMacvtap {
			if err := fillMacvtapDevice(&p.NICs[i], nsPath); err != nil {
				return nil, err
			}
		}
	}
	return p, p.validate()
}

func scanDevice(dev netlink.Link, links []netlink.Link, alias hint.DeviceAlias, nsPath string) (NIC, error) {
	a := dev.Attrs()
	n := NIC{Device: a.Name, Netns: nsPath, MAC: canonicalMAC(alias.GuestMAC), MTU: a.MTU, Queues: alias.Queues}
	var pod netlink.Link
	switch d := dev.(type) {
	case *netlink.Tuntap:
		n.Kind = hint.KindTap
		n.Tap = &hint.Tap{Name: a.Name, Netns: nsPath, Queues: alias.Queues, VnetHdr: d.Flags&netlink.TUNTAP_VNET_HDR != 0}
		pod, n.Tap.Wiring = podOfTap(dev, links)
	case *netlink.Macvtap:
		n.Kind = hint.KindMacvtap
		n.Macvtap = &hint.Macvtap{Name: a.Name, Netns: nsPath, Ifindex: a.Index, Mode: macvlanMode(d.Mode), Queues: alias.Queues, VnetHdr: true}
		pod = byIndex(links, a.ParentIndex)
	default:
		return NIC{}, fmt.Errorf("link %q has a vmcni alias but is a %s", a.Name, dev.Type())
	}
	if pod == nil {
		return NIC{}, fmt.Errorf("cannot find the pod interface %q is wired to", a.Name)
	}
	n.IfName = pod.Attrs().Name
	ips, routes, err := addressing(pod)
	if err != nil {
		return NIC{}, err
	}
	n.IPs, n.Routes = ips, routes
	return n, nil
}

// podOfTap finds the veth wired to the tap: the one whose ingress redirects
// to it (tcfilter), or a veth on the same bridge (bridge).
func podOfTap(tap netlink.Link, links []netlink.Link) (netlink.Link, string) {
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if target, err := link.RedirectTarget(l); err == nil && target == tap.Attrs().Index {
			return l, "tcfilter"
		}
		if m := tap.Attrs().MasterIndex; m != 0 && l.Attrs().MasterIndex == m {
			return l, "bridge"
		}
	}
	return nil, ""
}

func byIndex(links []netlink.Link, index int) netlink.Link {
	for _, l := range links {
		if l.Attrs().Index == index {
			return l
		}
	}
	return nil
}

func macvlanMode(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	}
	return "bridge"
}

// addressing reads the pod interface's global addresses and its routes; a
// default route's gateway becomes the gateway of the address of its family.
func addressing(pod netlink.Link) ([]hint.IP, []hint.Route, error) {
	addrs, err := netlink.AddrList(pod, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("addresses of %q: %w", pod.Attrs().Name, err)
	}
	routes, err := netlink.RouteList(pod, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("routes of %q: %w", pod.Attrs().Name, err)
	}
	gw := map[bool]string{} // by "is IPv6"
	var out []hint.Route
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL || (r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast()) {
			continue // subnet and link-local routes the guest derives itself
		}
		dst := "0.0.0.0/0"
		if r.Family == netlink.FAMILY_V6 {
			dst = "::/0"
		}
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		route := hint.Route{Dst: dst, MTU: r.MTU}
		if r.Gw != nil {
			route.GW = r.Gw.String()
			if r.Dst == nil || isDefault(r.Dst) {
				gw[r.Gw.To4() == nil] = route.GW
			}
		}
		out = append(out, route)
	}
	var ips []hint.IP
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		ips = append(ips, hint.IP{Address: a.IPNet.String(), Gateway: gw[a.IP.To4() == nil]})
	}
	return ips, out, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

// fillMacvtapDevice reads the macvtap's char device numbers.
func fillMacvtapDevice(n *NIC, nsPath string) error {
	major, minor, err := netns.MacvtapChardev(nsPath, n.Device)
	n.Macvtap.Major, n.Macvtap.Minor = major, minor
	return err
}
