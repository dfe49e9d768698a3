package fakevpp

import (
	"fmt"
	"net"
	"slices"
	"sort"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
)

// requestTypes are the requests the fake models, by message name.
var requestTypes = map[string]api.Message{}

func init() {
	for _, m := range []api.Message{
		&interfaces.SwInterfaceDump{}, &interfaces.SwInterfaceTagAddDel{}, &interfaces.SwInterfaceSetMtu{},
		&interfaces.SwInterfaceSetFlags{}, &interfaces.SwInterfaceAddDelAddress{},
		&vhost_user.CreateVhostUserIfV2{}, &vhost_user.DeleteVhostUserIf{},
		&memif.MemifSocketFilenameAddDelV2{}, &memif.MemifSocketFilenameDump{}, &memif.MemifCreateV2{},
		&memif.MemifDelete{}, &memif.MemifDump{},
		&l2.BridgeDomainDump{}, &l2.BridgeDomainAddDelV2{}, &l2.SwInterfaceSetL2Bridge{},
		&interfaces.CreateLoopback{}, &interfaces.DeleteLoopback{}, &interfaces.SwInterfaceSetUnnumbered{},
		&ip.IPAddressDump{}, &ip.IPUnnumberedDump{}, &ip.IPRouteAddDel{}, &ip.IPRouteDump{},
	} {
		requestTypes[m.GetMessageName()] = m
	}
}

// VPP retvals the model answers with (vnet/error.h).
const (
	errInvalidSwIfIndex  = int32(api.INVALID_SW_IF_INDEX)
	errInvalidSwIfIndex2 = int32(api.INVALID_SW_IF_INDEX_2)
	errNoSuchFib         = int32(api.NO_SUCH_FIB)
	errNoSuchEntry       = int32(api.NO_SUCH_ENTRY)
	errAddressNotFound   = int32(api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
	errInvalidValue      = int32(api.INVALID_VALUE)
	errIfExists          = int32(api.IF_ALREADY_EXISTS)
	errAddressInUse      = int32(api.ADDRESS_IN_USE)
	errBDExists          = int32(api.BD_ALREADY_EXISTS)
	errBDInUse           = int32(api.BD_IN_USE)
)

// apply runs one request on the model (v.mu held). It returns the reply,
// or for a dump the details (non-nil, possibly empty). A non-zero forced
// retval fails the request without changing the model.
func (v *VPP) apply(m api.Message, forced int32) (api.Message, []api.Message) {
	switch req := m.(type) {
	case *interfaces.SwInterfaceDump:
		return nil, v.dumpInterfaces()
	case *memif.MemifSocketFilenameDump:
		return nil, v.dumpSockets()
	case *memif.MemifDump:
		return nil, v.dumpMemifs()
	case *l2.BridgeDomainDump:
		return nil, v.dumpBDs(req.BdID)
	case *ip.IPAddressDump:
		return nil, v.dumpAddresses(uint32(req.SwIfIndex), req.IsIPv6)
	case *ip.IPUnnumberedDump:
		return nil, v.dumpUnnumbered(uint32(req.SwIfIndex))
	case *ip.IPRouteDump:
		return nil, v.dumpRoutes(req.Table)
	}
	reply, apply := v.prepare(m)
	if forced != 0 {
		return reply, nil
	}
	if rv := apply(); rv != 0 {
		reflectRetval(reply, rv)
	}
	return reply, nil
}

// prepare returns the empty reply of m and the function applying m, which
// returns VPP's retval.
func (v *VPP) prepare(m api.Message) (api.Message, func() int32) {
	switch req := m.(type) {
	case *vhost_user.CreateVhostUserIfV2:
		reply := &vhost_user.CreateVhostUserIfV2Reply{}
		return reply, func() int32 {
			for _, i := range v.ifaces {
				if i.Socket == req.SockFilename {
					return errIfExists
				}
			}
			i := v.newIface(fmt.Sprintf("VirtualEthernet0/0/%d", v.nextVhost))
			v.nextVhost++
			i.Socket, i.IsServer, i.Tag = req.SockFilename, req.IsServer, req.Tag
			if req.UseCustomMac {
				i.MAC = req.MacAddress.String()
			}
			reply.SwIfIndex = interface_types.InterfaceIndex(i.Index)
			return 0
		}
	case *vhost_user.DeleteVhostUserIf:
		return &vhost_user.DeleteVhostUserIfReply{}, func() int32 {
			return v.deleteIface(uint32(req.SwIfIndex), isVhostUser)
		}
	case *memif.MemifSocketFilenameAddDelV2:
		reply := &memif.MemifSocketFilenameAddDelV2Reply{}
		return reply, func() int32 { return v.socketAddDel(req, reply) }
	case *memif.MemifCreateV2:
		reply := &memif.MemifCreateV2Reply{}
		return reply, func() int32 {
			if _, ok := v.sockets[req.SocketID]; !ok {
				return errInvalidValue
			}
			for _, i := range v.ifaces {
				if i.Memif && i.SocketID == req.SocketID && i.MemifID == req.ID {
					return errIfExists
				}
			}
			i := v.newIface(fmt.Sprintf("memif%d/%d", req.SocketID, req.ID))
			i.Memif, i.SocketID, i.MemifID = true, req.SocketID, req.ID
			if req.HwAddr != (ethernet_types.MacAddress{}) {
				i.MAC = req.HwAddr.String()
			}
			reply.SwIfIndex = interface_types.InterfaceIndex(i.Index)
			return 0
		}
	case *memif.MemifDelete:
		return &memif.MemifDeleteReply{}, func() int32 { return v.deleteIface(uint32(req.SwIfIndex), isMemif) }
	case *l2.BridgeDomainAddDelV2:
		return &l2.BridgeDomainAddDelV2Reply{BdID: req.BdID}, func() int32 { return v.bdAddDel(req) }
	case *l2.SwInterfaceSetL2Bridge:
		return &l2.SwInterfaceSetL2BridgeReply{}, func() int32 {
			bd, ok := v.bds[req.BdID]
			if !ok {
				return errNoSuchEntry
			}
			if _, ok := v.ifaces[uint32(req.RxSwIfIndex)]; !ok {
				return errInvalidSwIfIndex
			}
			bd.Members = append(bd.Members, uint32(req.RxSwIfIndex))
			return 0
		}
	case *interfaces.SwInterfaceTagAddDel:
		return &interfaces.SwInterfaceTagAddDelReply{}, v.onIface(uint32(req.SwIfIndex), func(i *Iface) int32 {
			i.Tag = ""
			if req.IsAdd {
				i.Tag = req.Tag
			}
			return 0
		})
	case *interfaces.SwInterfaceSetMtu:
		return &interfaces.SwInterfaceSetMtuReply{}, v.onIface(uint32(req.SwIfIndex), func(i *Iface) int32 {
			i.MTU = req.Mtu[0]
			return 0
		})
	case *interfaces.SwInterfaceSetFlags:
		return &interfaces.SwInterfaceSetFlagsReply{}, v.onIface(uint32(req.SwIfIndex), func(i *Iface) int32 {
			i.AdminUp = req.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0
			return 0
		})
	case *interfaces.SwInterfaceAddDelAddress:
		return &interfaces.SwInterfaceAddDelAddressReply{}, v.onIface(uint32(req.SwIfIndex), func(i *Iface) int32 {
			return v.addDelAddress(i, req)
		})
	}
	if reply, apply := v.prepareL3(m); reply != nil {
		return reply, apply
	}
	panic(fmt.Sprintf("fakevpp: no model for %s", m.GetMessageName()))
}

func (v *VPP) newIface(name string) *Iface {
	i := &Iface{Index: v.nextIndex, Name: name, MTU: 9000}
	v.nextIndex++
	v.ifaces[i.Index] = i
	return i
}

func (v *VPP) onIface(index uint32, fn func(*Iface) int32) func() int32 {
	return func() int32 {
		i, ok := v.ifaces[index]
		if !ok {
			return errInvalidSwIfIndex
		}
		return fn(i)
	}
}

func isVhostUser(i *Iface) bool { return !i.Memif && !i.Loopback }
func isMemif(i *Iface) bool     { return i.Memif }
func isLoopback(i *Iface) bool  { return i.Loopback }

// deleteIface removes an interface of the kind kind accepts (else, as VPP's
// per-kind delete calls, it answers invalid sw_if_index) with everything
// VPP removes with it: its tag, addresses, unnumbered setting, bridge
// domain membership, the unnumbered settings borrowing from it and the
// route paths via it.
func (v *VPP) deleteIface(index uint32, kind func(*Iface) bool) int32 {
	i, ok := v.ifaces[index]
	if !ok || !kind(i) || index == 0 {
		return errInvalidSwIfIndex
	}
	delete(v.ifaces, index)
	if i.Loopback {
		delete(v.loops, i.Instance)
	}
	for _, bd := range v.bds {
		bd.Members = slices.DeleteFunc(bd.Members, func(m uint32) bool { return m == index })
	}
	for _, o := range v.ifaces {
		if o.Unnumbered && o.UnnumberedSource == index {
			o.Unnumbered, o.UnnumberedSource = false, 0
		}
	}
	for p, paths := range v.routes {
		paths = slices.DeleteFunc(paths, func(rp RoutePath) bool { return rp.SwIfIndex == index })
		if len(paths) == 0 {
			delete(v.routes, p)
		} else {
			v.routes[p] = paths
		}
	}
	return 0
}

func (v *VPP) socketAddDel(req *memif.MemifSocketFilenameAddDelV2, reply *memif.MemifSocketFilenameAddDelV2Reply) int32 {
	if !req.IsAdd {
		if _, ok := v.sockets[req.SocketID]; !ok || req.SocketID == 0 {
			return errNoSuchEntry
		}
		for _, i := range v.ifaces {
			if i.Memif && i.SocketID == req.SocketID {
				return errInvalidValue // socket in use
			}
		}
		delete(v.sockets, req.SocketID)
		return 0
	}
	for _, p := range v.sockets {
		if p == req.SocketFilename {
			return errIfExists
		}
	}
	id := req.SocketID
	if id == ^uint32(0) {
		id = v.nextSocket
		v.nextSocket++
	}
	v.sockets[id] = req.SocketFilename
	reply.SocketID = id
	return 0
}

func (v *VPP) bdAddDel(req *l2.BridgeDomainAddDelV2) int32 {
	bd, ok := v.bds[req.BdID]
	if req.IsAdd {
		if ok {
			return errBDExists
		}
		v.bds[req.BdID] = &BD{ID: req.BdID, Tag: req.BdTag}
		return 0
	}
	if !ok {
		return errNoSuchEntry
	}
	if len(bd.Members) > 0 {
		return errBDInUse
	}
	delete(v.bds, req.BdID)
	return 0
}

// addDelAddress adds or deletes one of the interface's own addresses. As
// VPP does in one table, it refuses (address in use) an address whose
// prefix overlaps an address of another interface, or an address of the
// same interface unless both are distinct addresses with the same prefix
// length (an interface may have several addresses of one subnet); it
// does not look at unnumbered interfaces, which have no addresses of
// their own.
func (v *VPP) addDelAddress(i *Iface, req *interfaces.SwInterfaceAddDelAddress) int32 {
	p := req.Prefix.ToIPNet()
	key := p.String()
	if !req.IsAdd {
		n := len(i.Addrs)
		i.Addrs = slices.DeleteFunc(i.Addrs, func(a string) bool { return a == key })
		if n == len(i.Addrs) {
			return errAddressNotFound
		}
		return 0
	}
	plen, _ := p.Mask.Size()
	for _, o := range v.ifaces {
		for _, a := range o.Addrs {
			addr, subnet, err := net.ParseCIDR(a)
			if err != nil || (addr.To4() == nil) != (p.IP.To4() == nil) {
				continue
			}
			if overlap := subnet.Contains(p.IP) || p.Contains(addr); !overlap {
				continue
			}
			if alen, _ := subnet.Mask.Size(); o == i && alen == plen && !addr.Equal(p.IP) {
				continue
			}
			return errAddressInUse
		}
	}
	i.Addrs = append(i.Addrs, key)
	return 0
}

func (v *VPP) sortedIndexes() []uint32 {
	var idx []uint32
	for k := range v.ifaces {
		idx = append(idx, k)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

func (v *VPP) dumpInterfaces() []api.Message {
	out := []api.Message{}
	for _, k := range v.sortedIndexes() {
		i := v.ifaces[k]
		d := &interfaces.SwInterfaceDetails{
			SwIfIndex: interface_types.InterfaceIndex(i.Index), InterfaceName: i.Name, Tag: i.Tag,
			Mtu: []uint32{i.MTU, i.MTU, i.MTU, i.MTU},
		}
		if mac, err := ethernet_types.ParseMacAddress(i.MAC); err == nil {
			d.L2Address = mac
		}
		if i.AdminUp {
			d.Flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP
		}
		out = append(out, d)
	}
	return out
}

func (v *VPP) dumpSockets() []api.Message {
	out := []api.Message{}
	for id, p := range v.sockets {
		out = append(out, &memif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: p})
	}
	return out
}

func (v *VPP) dumpMemifs() []api.Message {
	out := []api.Message{}
	for _, k := range v.sortedIndexes() {
		if i := v.ifaces[k]; i.Memif {
			out = append(out, &memif.MemifDetails{SwIfIndex: interface_types.InterfaceIndex(i.Index), SocketID: i.SocketID, ID: i.MemifID, IfName: i.Name})
		}
	}
	return out
}

func (v *VPP) dumpBDs(id uint32) []api.Message {
	out := []api.Message{}
	for _, bd := range v.bds {
		if id != ^uint32(0) && bd.ID != id {
			continue
		}
		d := &l2.BridgeDomainDetails{BdID: bd.ID, BdTag: bd.Tag, NSwIfs: uint32(len(bd.Members))}
		for _, m := range bd.Members {
			d.SwIfDetails = append(d.SwIfDetails, l2.BridgeDomainSwIf{SwIfIndex: interface_types.InterfaceIndex(m)})
		}
		out = append(out, d)
	}
	return out
}
