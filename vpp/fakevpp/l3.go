package fakevpp

import (
	"fmt"
	"net"
	"slices"
	"sort"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
)

// anyIndex is VPP's ~0.
const anyIndex = ^uint32(0)

// prepareL3 is prepare for the l3 requests: loopbacks, unnumbered
// settings, routes. It returns a nil reply for any other request.
func (v *VPP) prepareL3(m api.Message) (api.Message, func() int32) {
	switch req := m.(type) {
	case *interfaces.CreateLoopback:
		reply := &interfaces.CreateLoopbackReply{}
		return reply, func() int32 {
			i := v.newLoopback(req.MacAddress)
			reply.SwIfIndex = interface_types.InterfaceIndex(i.Index)
			return 0
		}
	case *interfaces.DeleteLoopback:
		return &interfaces.DeleteLoopbackReply{}, func() int32 { return v.deleteIface(uint32(req.SwIfIndex), isLoopback) }
	case *interfaces.SwInterfaceSetUnnumbered:
		return &interfaces.SwInterfaceSetUnnumberedReply{}, func() int32 { return v.setUnnumbered(req) }
	case *ip.IPRouteAddDel:
		return &ip.IPRouteAddDelReply{}, func() int32 { return v.routeAddDel(req) }
	}
	return nil, nil
}

// newLoopback creates loop<N>, N the lowest free instance; a zero MAC
// becomes de:ad:00:00:00:<N>, as in VPP.
func (v *VPP) newLoopback(mac ethernet_types.MacAddress) *Iface {
	var n uint32
	for v.loops[n] {
		n++
	}
	v.loops[n] = true
	i := v.newIface(fmt.Sprintf("loop%d", n))
	i.Loopback, i.Instance = true, n
	if mac == (ethernet_types.MacAddress{}) {
		mac = ethernet_types.MacAddress{0xde, 0xad, 0, 0, 0, byte(n)}
	}
	i.MAC = mac.String()
	return i
}

// setUnnumbered: VPP's field names are backwards; sw_if_index is the
// interface holding the addresses (checked only when setting),
// unnumbered_sw_if_index the one borrowing them.
func (v *VPP) setUnnumbered(req *interfaces.SwInterfaceSetUnnumbered) int32 {
	b, ok := v.ifaces[uint32(req.UnnumberedSwIfIndex)]
	if !ok {
		return errInvalidSwIfIndex
	}
	if !req.IsAdd {
		b.Unnumbered, b.UnnumberedSource = false, 0
		return 0
	}
	if _, ok := v.ifaces[uint32(req.SwIfIndex)]; !ok {
		return errInvalidSwIfIndex2
	}
	b.Unnumbered, b.UnnumberedSource = true, uint32(req.SwIfIndex)
	return 0
}

// routeAddDel models ip_route_add_del on the API source of table 0 (the
// only table): an add replaces the route's paths, a multipath add appends
// them; a delete removes the route, a multipath delete the given paths
// (the route goes with its last). Deleting what does not exist succeeds,
// as in VPP.
func (v *VPP) routeAddDel(req *ip.IPRouteAddDel) int32 {
	if req.Route.TableID != 0 {
		return errNoSuchFib
	}
	key := prefixKey(req.Route.Prefix)
	var paths []RoutePath
	for _, p := range req.Route.Paths {
		paths = append(paths, pathOf(p))
	}
	if !req.IsAdd {
		cur, ok := v.routes[key]
		switch {
		case !ok:
		case !req.IsMultipath:
			delete(v.routes, key)
		default:
			cur = slices.DeleteFunc(cur, func(p RoutePath) bool { return slices.Contains(paths, p) })
			if len(cur) == 0 {
				delete(v.routes, key)
			} else {
				v.routes[key] = cur
			}
		}
		return 0
	}
	if len(paths) == 0 {
		return errInvalidValue // VPP: no paths in route
	}
	for _, p := range paths {
		if _, ok := v.ifaces[p.SwIfIndex]; !ok && p.SwIfIndex != anyIndex {
			return errInvalidSwIfIndex
		}
	}
	if !req.IsMultipath {
		v.routes[key] = paths
		return 0
	}
	for _, p := range paths {
		if !slices.Contains(v.routes[key], p) {
			v.routes[key] = append(v.routes[key], p)
		}
	}
	return 0
}

// prefixKey is the prefix with its host bits cleared, as VPP stores it.
func prefixKey(p ip_types.Prefix) string {
	n := p.ToIPNet()
	return (&net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask}).String()
}

func pathOf(p fib_types.FibPath) RoutePath {
	rp := RoutePath{SwIfIndex: p.SwIfIndex}
	if p.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
		rp.NextHop = p.Nh.Address.GetIP6().String()
	} else {
		rp.NextHop = p.Nh.Address.GetIP4().String()
	}
	return rp
}

func (v *VPP) dumpAddresses(index uint32, ipv6 bool) []api.Message {
	out := []api.Message{}
	i, ok := v.ifaces[index]
	if !ok {
		return out
	}
	for _, a := range i.Addrs {
		p, err := ip_types.ParseAddressWithPrefix(a)
		if err != nil || (p.Address.Af == ip_types.ADDRESS_IP6) != ipv6 {
			continue
		}
		out = append(out, &ip.IPAddressDetails{SwIfIndex: interface_types.InterfaceIndex(index), Prefix: p})
	}
	return out
}

func (v *VPP) dumpUnnumbered(index uint32) []api.Message {
	out := []api.Message{}
	for _, k := range v.sortedIndexes() {
		if i := v.ifaces[k]; i.Unnumbered && (index == anyIndex || index == k) {
			out = append(out, &ip.IPUnnumberedDetails{SwIfIndex: interface_types.InterfaceIndex(k),
				IPSwIfIndex: interface_types.InterfaceIndex(i.UnnumberedSource)})
		}
	}
	return out
}

func (v *VPP) dumpRoutes(t ip.IPTable) []api.Message {
	out := []api.Message{}
	if t.TableID != 0 {
		return out
	}
	var keys []string
	for k := range v.routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, err := ip_types.ParsePrefix(k)
		if err != nil || (p.Address.Af == ip_types.ADDRESS_IP6) != t.IsIP6 {
			continue
		}
		r := ip.IPRoute{Prefix: p}
		for _, rp := range v.routes[k] {
			fp := fib_types.FibPath{SwIfIndex: rp.SwIfIndex, Weight: 1, Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4}
			nh := net.ParseIP(rp.NextHop)
			if t.IsIP6 {
				fp.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
				fp.Nh.Address = ip_types.AddressUnionIP6(ip_types.NewIP6Address(nh))
			} else {
				fp.Nh.Address = ip_types.AddressUnionIP4(ip_types.NewIP4Address(nh))
			}
			r.Paths = append(r.Paths, fp)
		}
		r.NPaths = uint8(len(r.Paths))
		out = append(out, &ip.IPRouteDetails{Route: r})
	}
	return out
}
