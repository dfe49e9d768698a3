package vppapi

import (
	"net"

	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
)

// The l3 calls: the network's gateway loopback, its addresses, unnumbered
// interfaces borrowing them, and host routes. Routes live in FIB table 0
// (VPP's default table, the one interfaces start in).

// CreateLoopback sends create_loopback and returns the sw_if_index. VPP
// names it loop<N> (N: the lowest free instance); mac nil lets VPP choose
// de:ad:00:00:00:<N>.
func (c *Client) CreateLoopback(mac net.HardwareAddr) (uint32, error) {
	req := &interfaces.CreateLoopback{}
	if mac != nil {
		req.MacAddress = ethernet_types.NewMacAddress(mac)
	}
	reply := &interfaces.CreateLoopbackReply{}
	if err := c.call(req, reply); err != nil {
		return 0, err
	}
	return uint32(reply.SwIfIndex), nil
}

// DeleteLoopback sends delete_loopback.
func (c *Client) DeleteLoopback(index uint32) error {
	return c.call(&interfaces.DeleteLoopback{SwIfIndex: interface_types.InterfaceIndex(index)}, &interfaces.DeleteLoopbackReply{})
}

// DeleteAddress removes prefix (address and prefix length) from the
// interface.
func (c *Client) DeleteAddress(index uint32, prefix *net.IPNet) error {
	return c.call(&interfaces.SwInterfaceAddDelAddress{SwIfIndex: interface_types.InterfaceIndex(index), IsAdd: false,
		Prefix: ip_types.NewAddressWithPrefix(*prefix)}, &interfaces.SwInterfaceAddDelAddressReply{})
}

// Addresses dumps the interface's own IPv4 (or, with ipv6, IPv6) addresses
// (ip_address_dump; not those it borrows as an unnumbered interface).
func (c *Client) Addresses(index uint32, ipv6 bool) ([]*net.IPNet, error) {
	var out []*net.IPNet
	err := dump(c, &ip.IPAddressDump{SwIfIndex: interface_types.InterfaceIndex(index), IsIPv6: ipv6},
		func() *ip.IPAddressDetails { return &ip.IPAddressDetails{} },
		func(d *ip.IPAddressDetails) {
			if uint32(d.SwIfIndex) == index {
				out = append(out, d.Prefix.ToIPNet())
			}
		})
	return out, err
}

// SetUnnumbered makes interface index use the addresses of interface
// source (sw_interface_set_unnumbered: sw_if_index is the source,
// unnumbered_sw_if_index the borrower).
func (c *Client) SetUnnumbered(index, source uint32) error {
	return c.call(&interfaces.SwInterfaceSetUnnumbered{SwIfIndex: interface_types.InterfaceIndex(source),
		UnnumberedSwIfIndex: interface_types.InterfaceIndex(index), IsAdd: true}, &interfaces.SwInterfaceSetUnnumberedReply{})
}

// UnsetUnnumbered stops interface index from using the addresses of
// source.
func (c *Client) UnsetUnnumbered(index, source uint32) error {
	return c.call(&interfaces.SwInterfaceSetUnnumbered{SwIfIndex: interface_types.InterfaceIndex(source),
		UnnumberedSwIfIndex: interface_types.InterfaceIndex(index), IsAdd: false}, &interfaces.SwInterfaceSetUnnumberedReply{})
}

// Unnumbered dumps the unnumbered interfaces: borrower sw_if_index →
// source sw_if_index (ip_unnumbered_dump).
func (c *Client) Unnumbered() (map[uint32]uint32, error) {
	out := map[uint32]uint32{}
	err := dump(c, &ip.IPUnnumberedDump{SwIfIndex: interface_types.InterfaceIndex(anyIndex)},
		func() *ip.IPUnnumberedDetails { return &ip.IPUnnumberedDetails{} },
		func(d *ip.IPUnnumberedDetails) { out[uint32(d.SwIfIndex)] = uint32(d.IPSwIfIndex) })
	return out, err
}

// Route is one path of a route of FIB table 0: Prefix via interface Via,
// next hop NextHop.
type Route struct {
	Prefix  *net.IPNet
	Via     uint32
	NextHop net.IP
}

// HostRoute is the /32 (IPv4) or /128 (IPv6) route to ip via interface
// index, ip itself being the next hop.
func HostRoute(index uint32, addr net.IP) Route {
	bits := 128
	if v4 := addr.To4(); v4 != nil {
		addr, bits = v4, 32
	}
	return Route{Prefix: &net.IPNet{IP: addr, Mask: net.CIDRMask(bits, bits)}, Via: index, NextHop: addr}
}

func (r Route) path() fib_types.FibPath {
	p := fib_types.FibPath{SwIfIndex: r.Via, Weight: 1, Type: fib_types.FIB_API_PATH_TYPE_NORMAL,
		Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4}
	if v4 := r.NextHop.To4(); v4 != nil {
		p.Nh.Address = ip_types.AddressUnionIP4(ip_types.NewIP4Address(v4))
	} else if r.NextHop != nil {
		p.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
		p.Nh.Address = ip_types.AddressUnionIP6(ip_types.NewIP6Address(r.NextHop))
	}
	return p
}

func (r Route) request(add, multipath bool) *ip.IPRouteAddDel {
	return &ip.IPRouteAddDel{IsAdd: add, IsMultipath: multipath, Route: ip.IPRoute{
		Prefix: ip_types.NewPrefix(*r.Prefix), NPaths: 1, Paths: []fib_types.FibPath{r.path()},
	}}
}

// AddRoute sets r as the route to r.Prefix (ip_route_add_del, not
// multipath: the route's API paths are replaced by r's).
func (c *Client) AddRoute(r Route) error {
	return c.call(r.request(true, false), &ip.IPRouteAddDelReply{})
}

// DeleteRoutePath removes r's path from the route to r.Prefix (multipath
// delete: other paths stay; the route goes with its last path). A missing
// route or path is not an error to VPP.
func (c *Client) DeleteRoutePath(r Route) error {
	return c.call(r.request(false, true), &ip.IPRouteAddDelReply{})
}

// Routes dumps the paths via an interface of the IPv4 (or, with ipv6, the
// IPv6) routes of table 0, one Route per path.
func (c *Client) Routes(ipv6 bool) ([]Route, error) {
	var out []Route
	err := dump(c, &ip.IPRouteDump{Table: ip.IPTable{TableID: 0, IsIP6: ipv6}},
		func() *ip.IPRouteDetails { return &ip.IPRouteDetails{} },
		func(d *ip.IPRouteDetails) {
			for _, p := range d.Route.Paths {
				if p.SwIfIndex == anyIndex {
					continue
				}
				r := Route{Prefix: d.Route.Prefix.ToIPNet(), Via: p.SwIfIndex}
				if p.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
					a := p.Nh.Address.GetIP6()
					r.NextHop = net.IP(a[:])
				} else {
					a := p.Nh.Address.GetIP4()
					r.NextHop = net.IP(a[:])
				}
				out = append(out, r)
			}
		})
	return out, err
}
