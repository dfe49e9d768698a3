package hint

import (
	"fmt"
	"net"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// AppendToResult adds the device interface (for tap and macvtap) and the
// pseudo-interface to res, and repeats the IPs of the interface at index
// podIf for the pseudo-interface. It returns the pseudo-interface's index.
// podIf < 0 means the attachment has no pod interface (vhost-user, vfio):
// then IPs already in res that have no interface are pointed at the
// pseudo-interface.
func AppendToResult(res *current.Result, h *Hint, podIf int) (int, error) {
	if err := h.Validate(); err != nil {
		return -1, err
	}
	pseudo := &current.Interface{
		Name:    h.DeviceName(),
		Mac:     h.Guest.MAC,
		Mtu:     h.Guest.MTU,
		Sandbox: h.ContainerID,
	}
	switch h.Kind {
	case KindTap:
		mac := h.Tap.MAC
		if mac == "" {
			mac = h.Guest.MAC
		}
		res.Interfaces = append(res.Interfaces, &current.Interface{
			Name: h.Tap.Name, Mac: mac, Mtu: h.Guest.MTU, Sandbox: h.Tap.Netns,
		})
	case KindMacvtap:
		res.Interfaces = append(res.Interfaces, &current.Interface{
			Name: h.Macvtap.Name, Mac: h.Guest.MAC, Mtu: h.Guest.MTU, Sandbox: h.Macvtap.Netns,
		})
	case KindVhostUser:
		pseudo.SocketPath = h.VhostUser.Socket
	case KindMemif:
		pseudo.SocketPath = h.Memif.Socket
	case KindVFIO:
		pseudo.PciID = h.VFIO.PCIAddress
	}
	res.Interfaces = append(res.Interfaces, pseudo)
	idx := len(res.Interfaces) - 1

	var extra []*current.IPConfig
	for _, ip := range res.IPs {
		switch {
		case podIf >= 0 && ip.Interface != nil && *ip.Interface == podIf:
			dup := ip.Copy()
			dup.Interface = current.Int(idx)
			extra = append(extra, dup)
		case podIf < 0 && ip.Interface == nil:
			ip.Interface = current.Int(idx)
		}
	}
	res.IPs = append(res.IPs, extra...)
	return idx, nil
}

// PseudoInterfaces returns the indexes of the pseudo-interfaces in res: the
// interfaces whose sandbox is containerID.
func PseudoInterfaces(res *current.Result, containerID string) []int {
	var out []int
	for i, iface := range res.Interfaces {
		if iface.Sandbox == containerID {
			out = append(out, i)
		}
	}
	return out
}

// GuestFromResult builds the guest section from the IPs, routes and DNS of
// res that belong to the interface at index podIf (all IPs when podIf < 0).
func GuestFromResult(res *current.Result, podIf int, mac string, mtu int) Guest {
	g := Guest{MAC: mac, MTU: mtu}
	for _, ip := range res.IPs {
		if podIf >= 0 && (ip.Interface == nil || *ip.Interface != podIf) {
			continue
		}
		gip := IP{Address: ip.Address.String()}
		if ip.Gateway != nil {
			gip.Gateway = ip.Gateway.String()
		}
		g.IPs = append(g.IPs, gip)
	}
	for _, r := range res.Routes {
		g.Routes = append(g.Routes, RouteFromCNI(r))
	}
	if len(res.DNS.Nameservers) > 0 || res.DNS.Domain != "" || len(res.DNS.Search) > 0 {
		dns := res.DNS
		g.DNS = &dns
	}
	return g
}

// CheckResult verifies that res carries h as the contract says: the
// pseudo-interface with the guest MAC, and the same IPs as the guest section.
func CheckResult(res *current.Result, h *Hint) error {
	for _, i := range PseudoInterfaces(res, h.ContainerID) {
		iface := res.Interfaces[i]
		if iface.Name != h.DeviceName() {
			continue
		}
		if !sameMAC(iface.Mac, h.Guest.MAC) {
			return fmt.Errorf("pseudo-interface %q has mac %q, hint says %q", iface.Name, iface.Mac, h.Guest.MAC)
		}
		var n int
		for _, ip := range res.IPs {
			if ip.Interface != nil && *ip.Interface == i {
				n++
			}
		}
		if n != len(h.Guest.IPs) {
			return fmt.Errorf("pseudo-interface %q has %d IPs, hint has %d", iface.Name, n, len(h.Guest.IPs))
		}
		return nil
	}
	return fmt.Errorf("result has no pseudo-interface %q with sandbox %q", h.DeviceName(), h.ContainerID)
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	return errA == nil && errB == nil && ma.String() == mb.String()
}
