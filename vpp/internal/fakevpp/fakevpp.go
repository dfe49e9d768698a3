// Package fakevpp is a stateful VPP stand-in for vm-vpp's tests. It sits
// behind govpp's mock adapter (go.fd.io/govpp/adapter/mock) as a reply
// handler, so requests go through a real govpp core connection and are
// encoded and decoded with the real binapi; the fake decodes each request,
// applies it to a small model of VPP (interfaces, tags, bridge domains,
// memif sockets) and answers with VPP's retvals. Tests read the recorded
// calls and the model, and inject a non-zero retval on the next request of
// a given name.
package fakevpp

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/adapter/mock"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
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
	Addrs   []string
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

// VPP is the fake. Its methods are safe for concurrent use.
type VPP struct {
	// Adapter is the govpp mock adapter the fake answers through.
	Adapter *mock.VppAdapter

	mu          sync.Mutex // guards every field below
	calls       []Call
	ifaces      map[uint32]*Iface
	bds         map[uint32]*BD
	sockets     map[uint32]string
	nextIndex   uint32
	nextSocket  uint32
	nextVhost   uint32
	failures    map[string][]int32
	unknown     []string
	incompat    map[string]bool
	connections int
}

// New returns a fake VPP with local0 (index 0) and memif socket 0.
func New() *VPP {
	v := &VPP{
		Adapter:    mock.NewVppAdapter(),
		ifaces:     map[uint32]*Iface{0: {Index: 0, Name: "local0"}},
		bds:        map[uint32]*BD{},
		sockets:    map[uint32]string{0: DefaultMemifSocket},
		nextIndex:  1,
		nextSocket: 1,
		failures:   map[string][]int32{},
		incompat:   map[string]bool{},
	}
	v.Adapter.MockReplyHandler(v.handle)
	return v
}

// Connector connects a real govpp core connection to the fake; the socket
// path and timeout are ignored.
func (v *VPP) Connector() vppapi.Connector {
	return func(context.Context, string, time.Duration) (vppapi.Conn, error) {
		v.mu.Lock()
		v.connections++
		v.mu.Unlock()
		return core.Connect(&checkingAdapter{VppAdapter: v.Adapter, v: v})
	}
}

// Connections counts Connector calls.
func (v *VPP) Connections() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.connections
}

// MakeIncompatible makes the fake report messages (by name) as unknown to
// this VPP, as a VPP of another version whose CRCs differ would.
func (v *VPP) MakeIncompatible(names ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range names {
		v.incompat[n] = true
	}
}

// checkingAdapter is the mock adapter with a message table check: the
// mock alone knows every message.
type checkingAdapter struct {
	*mock.VppAdapter
	v *VPP
}

// GetMsgID fails for the messages made incompatible.
func (a *checkingAdapter) GetMsgID(name, crc string) (uint16, error) {
	a.v.mu.Lock()
	bad := a.v.incompat[name]
	a.v.mu.Unlock()
	if bad {
		return 0, &adapter.UnknownMsgError{MsgName: name, MsgCrc: crc}
	}
	return a.VppAdapter.GetMsgID(name, crc)
}

// FailNext makes the next request named name fail with retval.
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

// handle is the mock adapter's reply handler.
func (v *VPP) handle(req mock.MessageDTO) ([]byte, uint16, bool) {
	name, _ := v.Adapter.GetMsgNameByID(req.MsgID)
	if name == "control_ping" {
		return v.encode(req, &memclnt.ControlPingReply{})
	}
	msg, ok := requestTypes[name]
	if !ok {
		v.mu.Lock()
		v.unknown = append(v.unknown, name)
		v.mu.Unlock()
		return nil, 0, false
	}
	m := reflect.New(reflect.TypeOf(msg).Elem()).Interface().(api.Message)
	if err := codec.DefaultCodec.DecodeMsg(req.Data, m); err != nil {
		panic(fmt.Sprintf("fakevpp: decode %s: %v", name, err))
	}
	v.mu.Lock()
	v.calls = append(v.calls, Call{Name: name, Msg: m})
	var retval int32
	if f := v.failures[name]; len(f) > 0 {
		retval, v.failures[name] = f[0], f[1:]
	}
	reply, details := v.apply(m, retval)
	v.mu.Unlock()
	if details != nil {
		// A dump: queue the details; the adapter sends them all at once
		// when the handler declines, and the control ping that follows
		// ends the dump.
		v.Adapter.MockReply(details...)
		return nil, 0, false
	}
	if retval != 0 {
		reflectRetval(reply, retval)
	}
	return v.encode(req, reply)
}

// reflectRetval sets the Retval field every binapi reply has.
func reflectRetval(reply api.Message, retval int32) {
	reflect.ValueOf(reply).Elem().FieldByName("Retval").SetInt(int64(retval))
}

func (v *VPP) encode(req mock.MessageDTO, reply api.Message) ([]byte, uint16, bool) {
	id, err := v.Adapter.GetMsgID(reply.GetMessageName(), reply.GetCrcString())
	if err != nil {
		panic(err)
	}
	data, err := codec.DefaultCodec.EncodeMsg(reply, id)
	if err != nil {
		panic(fmt.Sprintf("fakevpp: encode %s: %v", reply.GetMessageName(), err))
	}
	binary.BigEndian.PutUint32(data[2:6], req.ClientID)
	return data, id, true
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
	v.deleteIface(index, v.ifaces[index] != nil && v.ifaces[index].Memif)
}
