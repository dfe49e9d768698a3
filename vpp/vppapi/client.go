package vppapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
)

// anyIndex is VPP's ~0: "all" in dumps, "allocate one" in socket ids.
const anyIndex = ^uint32(0)

// Client sends typed requests on one API channel. Every method is one
// request (or one dump) and returns VPP's non-zero retval as an error that
// matches the api.VPPApiError value with errors.Is.
type Client struct {
	conn Conn
	ch   api.Channel
}

// Dial connects through connector, opens an API channel whose replies time
// out after timeout, and checks the CRCs of the messages of features. The
// returned Client must be closed.
func Dial(ctx context.Context, connector Connector, socket string, timeout time.Duration, features ...Feature) (*Client, error) {
	conn, err := connector(ctx, socket, timeout)
	if err != nil {
		return nil, err
	}
	ch, err := conn.NewAPIChannel()
	if err != nil {
		conn.Disconnect()
		return nil, fmt.Errorf("open VPP API channel: %w", err)
	}
	ch.SetReplyTimeout(timeout)
	if err := checkCompatibility(ch, Messages(features...)); err != nil {
		ch.Close()
		conn.Disconnect()
		return nil, err
	}
	return &Client{conn: conn, ch: ch}, nil
}

// Close releases the channel and the connection. It never fails; the
// error makes a Client an io.Closer.
func (c *Client) Close() error {
	c.ch.Close()
	c.conn.Disconnect()
	return nil
}

// IsRetval reports whether err is VPP refusing a request (a non-zero
// retval) rather than a transport or encoding failure.
func IsRetval(err error) bool {
	var r api.VPPApiError
	return errors.As(err, &r)
}

func (c *Client) call(req, reply api.Message) error {
	if err := c.ch.SendRequest(req).ReceiveReply(reply); err != nil {
		return fmt.Errorf("VPP %s: %w", req.GetMessageName(), err)
	}
	return nil
}

// dump sends a dump request and calls each with every details message.
func dump[T api.Message](c *Client, req api.Message, newT func() T, each func(T)) error {
	ctx := c.ch.SendMultiRequest(req)
	for {
		d := newT()
		last, err := ctx.ReceiveReply(d)
		if err != nil {
			return fmt.Errorf("VPP %s: %w", req.GetMessageName(), err)
		}
		if last {
			return nil
		}
		each(d)
	}
}

// Interface is one entry of sw_interface_dump.
type Interface struct {
	Index   uint32
	Name    string
	DevType string
	Tag     string
	MAC     net.HardwareAddr
	AdminUp bool
	// MTU is the L3 MTU (mtu[0]).
	MTU uint32
}

// Interfaces dumps every software interface.
func (c *Client) Interfaces() ([]Interface, error) {
	var out []Interface
	err := dump(c, &interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(anyIndex)},
		func() *interfaces.SwInterfaceDetails { return &interfaces.SwInterfaceDetails{} },
		func(d *interfaces.SwInterfaceDetails) {
			i := Interface{
				Index: uint32(d.SwIfIndex), Name: d.InterfaceName, DevType: d.InterfaceDevType, Tag: d.Tag,
				MAC: d.L2Address.ToMAC(), AdminUp: d.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0,
			}
			if len(d.Mtu) > 0 {
				i.MTU = d.Mtu[0]
			}
			out = append(out, i)
		})
	return out, err
}

// VhostUser is what CreateVhostUser creates.
type VhostUser struct {
	// Socket is the unix socket path.
	Socket string
	// Server makes VPP listen on Socket (the VMM connects); otherwise VPP
	// connects to the VMM's socket and retries until it appears.
	Server bool
	// MAC of VPP's interface; nil lets VPP choose.
	MAC net.HardwareAddr
	// Tag is set on the interface atomically with its creation.
	Tag string
}

// CreateVhostUser sends create_vhost_user_if_v2 and returns the sw_if_index.
func (c *Client) CreateVhostUser(v VhostUser) (uint32, error) {
	req := &vhost_user.CreateVhostUserIfV2{IsServer: v.Server, SockFilename: v.Socket, Tag: v.Tag}
	if v.MAC != nil {
		req.UseCustomMac = true
		req.MacAddress = ethernet_types.NewMacAddress(v.MAC)
	}
	reply := &vhost_user.CreateVhostUserIfV2Reply{}
	if err := c.call(req, reply); err != nil {
		return 0, err
	}
	return uint32(reply.SwIfIndex), nil
}

// DeleteVhostUser sends delete_vhost_user_if.
func (c *Client) DeleteVhostUser(index uint32) error {
	return c.call(&vhost_user.DeleteVhostUserIf{SwIfIndex: interface_types.InterfaceIndex(index)}, &vhost_user.DeleteVhostUserIfReply{})
}

// AddMemifSocket registers path as a memif socket file and returns the
// socket id VPP allocated.
func (c *Client) AddMemifSocket(path string) (uint32, error) {
	reply := &memif.MemifSocketFilenameAddDelV2Reply{}
	if err := c.call(&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: anyIndex, SocketFilename: path}, reply); err != nil {
		return 0, err
	}
	return reply.SocketID, nil
}

// DeleteMemifSocket removes the socket file registration id.
func (c *Client) DeleteMemifSocket(id uint32) error {
	return c.call(&memif.MemifSocketFilenameAddDelV2{IsAdd: false, SocketID: id}, &memif.MemifSocketFilenameAddDelV2Reply{})
}

// MemifSockets dumps the registered memif socket files: id → path.
func (c *Client) MemifSockets() (map[uint32]string, error) {
	out := map[uint32]string{}
	err := dump(c, &memif.MemifSocketFilenameDump{},
		func() *memif.MemifSocketFilenameDetails { return &memif.MemifSocketFilenameDetails{} },
		func(d *memif.MemifSocketFilenameDetails) { out[d.SocketID] = d.SocketFilename })
	return out, err
}

// Memif is what CreateMemif creates.
type Memif struct {
	// Master: VPP is the memif master (server) and creates the socket.
	Master bool
	// IPMode selects memif mode ip (no Ethernet header) instead of ethernet.
	IPMode     bool
	SocketID   uint32
	ID         uint32
	RxQueues   uint8
	TxQueues   uint8
	RingSize   uint32
	BufferSize uint16
	// MAC of VPP's memif interface; nil lets VPP choose.
	MAC    net.HardwareAddr
	Secret string
}

// CreateMemif sends memif_create_v2 and returns the sw_if_index.
func (c *Client) CreateMemif(m Memif) (uint32, error) {
	req := &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_SLAVE, Mode: memif.MEMIF_MODE_API_ETHERNET,
		RxQueues: m.RxQueues, TxQueues: m.TxQueues, ID: m.ID, SocketID: m.SocketID,
		RingSize: m.RingSize, BufferSize: m.BufferSize, Secret: m.Secret,
	}
	if m.Master {
		req.Role = memif.MEMIF_ROLE_API_MASTER
	}
	if m.IPMode {
		req.Mode = memif.MEMIF_MODE_API_IP
	}
	if m.MAC != nil {
		req.HwAddr = ethernet_types.NewMacAddress(m.MAC)
	}
	reply := &memif.MemifCreateV2Reply{}
	if err := c.call(req, reply); err != nil {
		return 0, err
	}
	return uint32(reply.SwIfIndex), nil
}

// DeleteMemif sends memif_delete.
func (c *Client) DeleteMemif(index uint32) error {
	return c.call(&memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(index)}, &memif.MemifDeleteReply{})
}

// MemifSocketUse is one memif interface and the socket it uses.
type MemifSocketUse struct {
	Index    uint32
	SocketID uint32
}

// Memifs dumps the memif interfaces.
func (c *Client) Memifs() ([]MemifSocketUse, error) {
	var out []MemifSocketUse
	err := dump(c, &memif.MemifDump{},
		func() *memif.MemifDetails { return &memif.MemifDetails{} },
		func(d *memif.MemifDetails) {
			out = append(out, MemifSocketUse{Index: uint32(d.SwIfIndex), SocketID: d.SocketID})
		})
	return out, err
}

// BridgeDomain is one entry of bridge_domain_dump.
type BridgeDomain struct {
	ID      uint32
	Tag     string
	Members []uint32
}

// BridgeDomain dumps bridge domain id; nil means it does not exist.
func (c *Client) BridgeDomain(id uint32) (*BridgeDomain, error) {
	var out *BridgeDomain
	err := dump(c, &l2.BridgeDomainDump{BdID: id, SwIfIndex: interface_types.InterfaceIndex(anyIndex)},
		func() *l2.BridgeDomainDetails { return &l2.BridgeDomainDetails{} },
		func(d *l2.BridgeDomainDetails) {
			if d.BdID != id {
				return
			}
			out = &BridgeDomain{ID: d.BdID, Tag: d.BdTag}
			for _, m := range d.SwIfDetails {
				out.Members = append(out.Members, uint32(m.SwIfIndex))
			}
		})
	return out, err
}

// AddBridgeDomain creates bridge domain id with VPP's usual defaults
// (flood, unknown-unicast flood, forward, learn; no ARP termination).
func (c *Client) AddBridgeDomain(id uint32, tag string) error {
	return c.call(&l2.BridgeDomainAddDelV2{BdID: id, IsAdd: true, Flood: true, UuFlood: true, Forward: true, Learn: true, BdTag: tag},
		&l2.BridgeDomainAddDelV2Reply{})
}

// DeleteBridgeDomain deletes bridge domain id.
func (c *Client) DeleteBridgeDomain(id uint32) error {
	return c.call(&l2.BridgeDomainAddDelV2{BdID: id, IsAdd: false}, &l2.BridgeDomainAddDelV2Reply{})
}

// SetL2Bridge puts interface index into bridge domain bd as a normal port.
func (c *Client) SetL2Bridge(index, bd uint32) error {
	return c.call(&l2.SwInterfaceSetL2Bridge{RxSwIfIndex: interface_types.InterfaceIndex(index), BdID: bd,
		PortType: l2.L2_API_PORT_TYPE_NORMAL, Enable: true}, &l2.SwInterfaceSetL2BridgeReply{})
}

// SetTag sets the interface's tag.
func (c *Client) SetTag(index uint32, tag string) error {
	return c.call(&interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: interface_types.InterfaceIndex(index), Tag: tag},
		&interfaces.SwInterfaceTagAddDelReply{})
}

// SetMTU sets the L3, IPv4, IPv6 and MPLS MTU of the interface.
func (c *Client) SetMTU(index, mtu uint32) error {
	return c.call(&interfaces.SwInterfaceSetMtu{SwIfIndex: interface_types.InterfaceIndex(index), Mtu: []uint32{mtu, mtu, mtu, mtu}},
		&interfaces.SwInterfaceSetMtuReply{})
}

// SetAdminUp sets the interface admin up (or down).
func (c *Client) SetAdminUp(index uint32, up bool) error {
	var flags interface_types.IfStatusFlags
	if up {
		flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	return c.call(&interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(index), Flags: flags},
		&interfaces.SwInterfaceSetFlagsReply{})
}

// AddAddress adds prefix (address and prefix length) to the interface.
func (c *Client) AddAddress(index uint32, prefix *net.IPNet) error {
	return c.call(&interfaces.SwInterfaceAddDelAddress{SwIfIndex: interface_types.InterfaceIndex(index), IsAdd: true,
		Prefix: ip_types.NewAddressWithPrefix(*prefix)}, &interfaces.SwInterfaceAddDelAddressReply{})
}
