// Package fakevpp is a test stand-in for VPP: VPP cannot run on the
// project's machines, so vm-vpp's tests, and the conformance suite running
// the real vm-vpp binary, talk to this stateful model of VPP instead. It is
// for tests only; nothing in a plugin binary imports it.
//
// The model (interfaces, tags, bridge domains and their members, memif
// socket registrations, loopbacks, interface addresses and unnumbered
// settings, the API routes of FIB table 0, VPP's retvals from
// vnet/error.h) decodes each
// request with the real binapi, applies it and answers with the replies a
// VPP would send. It is reachable two ways, both ending in the same
// request-in, replies-out core:
//
//   - in-process: Connector returns a real govpp core connection on
//     govpp's mock adapter (go.fd.io/govpp/adapter/mock), which supplies the
//     message IDs;
//   - over a unix socket: ServeSocket speaks VPP's socket binary API (the
//     protocol of govpp's adapter/socketclient, vm-vpp's production path):
//     sockclnt_create with its message table, then one request at a time per
//     connection, any number of connections (one per plugin process).
//
// Tests read the recorded calls and the model, add objects "created by
// someone else", inject a non-zero retval on the next request of a given
// name (FailNext) and make messages unknown (MakeIncompatible), as a VPP of
// another version whose CRCs differ would.
package fakevpp

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.fd.io/govpp/adapter/mock"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/core"

	"github.com/vmcni/vmcni/vpp/vppapi"
)

// DefaultMemifSocket is socket id 0, which VPP always has.
const DefaultMemifSocket = "/run/vpp/memif.sock"

// Call is one request the plugin sent (control pings excluded).
type Call struct {
	Name string
	Msg  api.Message
}

// Iface is a VPP software interface of the model.
type Iface struct {
	Index   uint32
	Name    string
	Tag     string
	MTU     uint32
	AdminUp bool
	MAC     string
	// Addrs are the interface's own addresses ("10.77.0.1/24").
	Addrs []string
	// Unnumbered: the interface borrows the addresses of UnnumberedSource.
	Unnumbered       bool
	UnnumberedSource uint32
	// Loopback: made by create_loopback (name loop<Instance>).
	Loopback bool
	Instance uint32
	// Socket is the vhost-user socket path; SocketID, MemifID the memif's.
	Socket   string
	IsServer bool
	SocketID uint32
	MemifID  uint32
	Memif    bool
}

// BD is a bridge domain of the model.
type BD struct {
	ID      uint32
	Tag     string
	Members []uint32
}

// Route is an API route of FIB table 0.
type Route struct {
	// Prefix is the route's prefix, "10.77.0.2/32".
	Prefix string
	Paths  []RoutePath
}

// RoutePath is one path of a Route: via interface SwIfIndex, next hop
// NextHop.
type RoutePath struct {
	SwIfIndex uint32
	NextHop   string
}

// VPP is the fake. Its methods are safe for concurrent use.
type VPP struct {
	// ids is the govpp mock adapter numbering the messages of Connector's
	// connections (it is safe for concurrent use).
	ids *mock.VppAdapter

	mu          sync.Mutex // guards every field below
	calls       []Call
	ifaces      map[uint32]*Iface
	bds         map[uint32]*BD
	sockets     map[uint32]string
	routes      map[string][]RoutePath // table 0, by prefix
	loops       map[uint32]bool        // loopback instances in use
	nextIndex   uint32
	nextSocket  uint32
	nextVhost   uint32
	failures    map[string][]int32
	unknown     []string
	incompat    map[string]bool
	connections int
	nextClient  uint32
}

// New returns a fake VPP with local0 (index 0) and memif socket 0.
func New() *VPP {
	return &VPP{
		ids:        mock.NewVppAdapter(),
		ifaces:     map[uint32]*Iface{0: {Index: 0, Name: "local0"}},
		bds:        map[uint32]*BD{},
		sockets:    map[uint32]string{0: DefaultMemifSocket},
		routes:     map[string][]RoutePath{},
		loops:      map[uint32]bool{},
		nextIndex:  1,
		nextSocket: 1,
		failures:   map[string][]int32{},
		incompat:   map[string]bool{},
		nextClient: 1,
	}
}

// Connector connects a real govpp core connection to the fake; the socket
// path and timeout are ignored.
func (v *VPP) Connector() vppapi.Connector {
	return func(context.Context, string, time.Duration) (vppapi.Conn, error) {
		v.mu.Lock()
		v.connections++
		v.mu.Unlock()
		return core.Connect(&mockConn{VppAdapter: v.ids, v: v})
	}
}

// Connections counts the connections made so far: Connector calls and
// accepted socket connections (see ServeSocket).
func (v *VPP) Connections() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.connections
}

// MakeIncompatible makes the fake report messages (by name) as unknown to
// this VPP, as a VPP of another version whose CRCs differ would: the mock
// adapter has no ID for them and the socket server leaves them out of the
// message table of connections made afterwards.
func (v *VPP) MakeIncompatible(names ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range names {
		v.incompat[n] = true
	}
}

// FailNext makes the next request named name fail with retval. The
// failures of a name queue up: FailNext(name, 0) lets one request through
// (so FailNext(n, 0) then FailNext(n, rv) fails the second one).
func (v *VPP) FailNext(name string, retval int32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.failures[name] = append(v.failures[name], retval)
}

// Calls returns the requests received so far.
func (v *VPP) Calls() []Call {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Call(nil), v.calls...)
}

// Names returns the names of the requests received so far.
func (v *VPP) Names() []string {
	var out []string
	for _, c := range v.Calls() {
		out = append(out, c.Name)
	}
	return out
}

// ResetCalls forgets the recorded requests.
func (v *VPP) ResetCalls() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = nil
}

// Unknown returns requests the fake does not model (a test bug).
func (v *VPP) Unknown() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.unknown...)
}

// Interfaces returns a copy of the interfaces, by index.
func (v *VPP) Interfaces() []Iface {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Iface
	for _, i := range v.ifaces {
		c := *i
		c.Addrs = append([]string(nil), i.Addrs...)
		out = append(out, c)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// BridgeDomains returns a copy of the bridge domains.
func (v *VPP) BridgeDomains() map[uint32]BD {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[uint32]BD{}
	for id, bd := range v.bds {
		out[id] = BD{ID: bd.ID, Tag: bd.Tag, Members: append([]uint32(nil), bd.Members...)}
	}
	return out
}

// Routes returns a copy of the API routes of table 0, by prefix.
func (v *VPP) Routes() []Route {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Route
	for p, paths := range v.routes {
		out = append(out, Route{Prefix: p, Paths: append([]RoutePath(nil), paths...)})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Prefix < out[b].Prefix })
	return out
}

// MemifSockets returns the memif socket registrations.
func (v *VPP) MemifSockets() map[uint32]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[uint32]string{}
	for id, p := range v.sockets {
		out[id] = p
	}
	return out
}

// AddInterface adds an interface created by someone else (name, tag).
func (v *VPP) AddInterface(name, tag string, memif bool, socketID uint32) uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := &Iface{Index: v.nextIndex, Name: name, Tag: tag, Memif: memif, SocketID: socketID}
	v.nextIndex++
	v.ifaces[i.Index] = i
	return i.Index
}

// AddBridgeDomain adds a bridge domain created by someone else.
func (v *VPP) AddBridgeDomain(id uint32, members ...uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bds[id] = &BD{ID: id, Members: members}
}

// AddMemifSocket registers a socket file created by someone else.
func (v *VPP) AddMemifSocket(path string) uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	id := v.nextSocket
	v.nextSocket++
	v.sockets[id] = path
	return id
}

// JoinBridgeDomain adds interface index to bridge domain id, as another
// client would.
func (v *VPP) JoinBridgeDomain(id, index uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if bd, ok := v.bds[id]; ok {
		bd.Members = append(bd.Members, index)
	}
}

// RemoveInterface deletes an interface behind the plugin's back.
func (v *VPP) RemoveInterface(index uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deleteIface(index, func(*Iface) bool { return true })
}
