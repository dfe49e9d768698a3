package vmnet

import (
	"fmt"
	"net"
	"strings"
)

// KernelIPParam returns the kernel "ip=" parameter for the first NIC with an
// IPv4 address, "ip=<client>::<gw>:<netmask>::eth<i>:off" with the NIC's
// first IPv4 address and its default IPv4 gateway (empty when it has no
// default route). It returns "" when no NIC has an IPv4 address.
func KernelIPParam(p *Plan) string {
	if p == nil {
		return ""
	}
	for i := range p.NICs {
		n := &p.NICs[i]
		for _, ip := range n.IPs {
			addr, ipnet, err := net.ParseCIDR(ip.Address)
			if err != nil || addr.To4() == nil {
				continue
			}
			mask := net.IP(ipnet.Mask).String()
			return fmt.Sprintf("ip=%s::%s:%s::eth%d:off", addr, defaultGateway(n, true), mask, i)
		}
	}
	return ""
}

// GuestCmdline returns the vmcni test guest's kernel parameters for the
// first NIC (see vmnet/guest/README.md): vmcni.ip (all its addresses),
// vmcni.gw and vmcni.gw6 (its default gateways), vmcni.mtu and vmcni.mac,
// each left out when unknown, separated by spaces. It returns "" for an
// empty plan.
func GuestCmdline(p *Plan) string {
	if p == nil || len(p.NICs) == 0 {
		return ""
	}
	n := &p.NICs[0]
	var params, addrs []string
	for _, ip := range n.IPs {
		addrs = append(addrs, ip.Address)
	}
	if len(addrs) > 0 {
		params = append(params, "vmcni.ip="+strings.Join(addrs, ","))
	}
	if gw := defaultGateway(n, true); gw != "" {
		params = append(params, "vmcni.gw="+gw)
	}
	if gw := defaultGateway(n, false); gw != "" {
		params = append(params, "vmcni.gw6="+gw)
	}
	if routes := otherRoutes(n); len(routes) > 0 {
		params = append(params, "vmcni.routes="+strings.Join(routes, ","))
	}
	if n.MTU > 0 {
		params = append(params, fmt.Sprintf("vmcni.mtu=%d", n.MTU))
	}
	params = append(params, "vmcni.mac="+n.MAC)
	return strings.Join(params, " ")
}

// otherRoutes renders n's routes as "<dst>[@<gw>][~<mtu>]" ("@<gw>" left
// out when on-link, "~<mtu>" when the route has none), in the hint's
// order: all but the default routes (vmcni.gw, vmcni.gw6), which come
// again only when they carry an MTU.
func otherRoutes(n *NIC) []string {
	var out []string
	for _, r := range n.Routes {
		ip, ipnet, err := net.ParseCIDR(r.Dst)
		if err != nil {
			continue
		}
		if ones, _ := ipnet.Mask.Size(); ones == 0 && r.MTU == 0 {
			continue // vmcni.gw / vmcni.gw6
		}
		route := ipnet.String()
		if gw := routeVia(n, r.GW, ip.To4() != nil); gw != "" {
			route += "@" + gw
		}
		if r.MTU > 0 {
			route += fmt.Sprintf("~%d", r.MTU)
		}
		out = append(out, route)
	}
	return out
}

// defaultGateway returns the gateway of n's default route of one family
// (IPv4 when v4), "" when it has none.
func defaultGateway(n *NIC, v4 bool) string {
	for _, r := range n.Routes {
		ip, ipnet, err := net.ParseCIDR(r.Dst)
		if err != nil || (ip.To4() != nil) != v4 {
			continue
		}
		if ones, _ := ipnet.Mask.Size(); ones == 0 {
			return routeVia(n, r.GW, v4)
		}
	}
	return ""
}

// routeVia returns a route's next hop: gw, or when empty the gateway of n's
// first address of the route's family that has one ("" means on-link).
func routeVia(n *NIC, gw string, v4 bool) string {
	if gw != "" {
		return gw
	}
	for _, ip := range n.IPs {
		addr, _, err := net.ParseCIDR(ip.Address)
		if err == nil && (addr.To4() != nil) == v4 && ip.Gateway != "" {
			return ip.Gateway
		}
	}
	return ""
}

// onSubnet reports whether gw is inside the subnet of one of n's addresses.
func onSubnet(n *NIC, gw string) bool {
	gwIP := net.ParseIP(gw)
	for _, ip := range n.IPs {
		if _, ipnet, err := net.ParseCIDR(ip.Address); err == nil && ipnet.Contains(gwIP) {
			return true
		}
	}
	return false
}
