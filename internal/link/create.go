package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/fault"
)

// created is the fault point right after a link exists and before it is
// configured: a create that fails from here on has left the link behind.
func created(ctx context.Context, name string) error {
	return fault.Point(ctx, "link "+name+" created")
}

// Veth describes a veth pair whose peer is created directly inside another
// namespace (one netlink request, no rename).
type Veth struct {
	HostName string
	PeerName string
	// PeerNetnsFd is an open fd of the peer's namespace.
	PeerNetnsFd int
	MTU         int
	// PeerMAC (optional) is the peer's MAC; the kernel picks one when nil.
	PeerMAC net.HardwareAddr
	// HostMAC (optional) is the host end's MAC.
	HostMAC net.HardwareAddr
	// MasterIndex (optional) is the bridge the host end joins.
	MasterIndex int
}

// CreateVeth creates the pair, with the host end up and in its master,
// in one request. The peer stays
// down; configure it from inside its namespace. An error after the pair
// exists leaves it in place (delete it by name).
func CreateVeth(ctx context.Context, v Veth) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = v.HostName
	attrs.MTU = v.MTU
	attrs.HardwareAddr = v.HostMAC
	attrs.MasterIndex = v.MasterIndex
	attrs.Flags = net.FlagUp
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         v.PeerName,
		PeerMTU:          uint32(v.MTU),
		PeerHardwareAddr: v.PeerMAC,
		PeerNamespace:    netlink.NsFd(v.PeerNetnsFd),
	}
	if err := retry(func() error { return netlink.LinkAdd(veth) }); err != nil {
		return nil, fmt.Errorf("create veth %q (peer %q): %w", v.HostName, v.PeerName, err)
	}
	if err := created(ctx, v.HostName); err != nil {
		return nil, err
	}
	return ByName(v.HostName)
}

// EnsureBridge returns the bridge called name, creating it (up, with mtu) if
// it does not exist; isNew tells which, also when err is not nil (the
// bridge exists, but could not be brought up). A link of another type with
// that name is an error.
func EnsureBridge(ctx context.Context, name string, mtu int) (br *netlink.Bridge, isNew bool, err error) {
	l, err := ByName(name)
	if err == nil {
		existing, ok := l.(*netlink.Bridge)
		if !ok {
			return nil, false, fmt.Errorf("link %q exists and is a %s, not a bridge", name, l.Type())
		}
		return existing, false, nil
	}
	if !IsNotFound(err) {
		return nil, false, err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	attrs.TxQLen = -1
	// A bridge without an explicit MAC takes its lowest port's, and changes
	// it as pods come and go: every pod's ARP entry for the gateway then
	// points at a MAC the bridge no longer owns until it expires. Fix it.
	attrs.HardwareAddr = RandomMAC()
	newBr := &netlink.Bridge{LinkAttrs: attrs}
	err = retry(func() error { return netlink.LinkAdd(newBr) })
	if errors.Is(err, syscall.EEXIST) {
		return EnsureBridge(ctx, name, mtu) // another ADD won the race
	}
	if err != nil {
		return nil, false, fmt.Errorf("create bridge %q: %w", name, err)
	}
	if err = created(ctx, name); err != nil {
		return nil, true, err
	}
	l, err = ByName(name)
	if err != nil {
		return nil, true, err
	}
	return l.(*netlink.Bridge), true, SetUp(l)
}

// Tap describes a persistent tap.
type Tap struct {
	Name string
	// Queues > 1 creates a multiqueue tap (IFF_MULTI_QUEUE).
	Queues int
	// VnetHdr sets IFF_VNET_HDR (virtio-net offloads).
	VnetHdr bool
	// Owner and Group (optional) restrict who may open the tap; nil leaves
	// it open to any process with CAP_NET_ADMIN.
	Owner, Group *uint32
	MTU          int
	MAC          net.HardwareAddr
	// LinkGroup and Alias (optional) are the tap's link group and alias.
	LinkGroup uint32
	Alias     string
}

// Flags returns the TUNSETIFF flags a VMM must use to open the tap.
func (t Tap) Flags() netlink.TuntapFlag {
	flags := netlink.TUNTAP_NO_PI
	if t.VnetHdr {
		flags |= netlink.TUNTAP_VNET_HDR
	}
	if t.Queues > 1 {
		flags |= netlink.TUNTAP_MULTI_QUEUE
	}
	return flags
}

// CreateTap creates the tap, persistent, with no process attached, sets its
// MTU, MAC, link group and alias and brings it up. It acts in the calling thread's netns (the
// tun driver uses the opener's namespace). The owner and group are only set
// when given (netlink's Tuntap always sets them, to root when unset). An
// existing link of that name is an error (IFF_TUN_EXCL): it is not ours.
// An error after the tap exists leaves it in place (delete it by name).
func CreateTap(ctx context.Context, t Tap) (netlink.Link, error) {
	if err := createPersistentTap(t); err != nil {
		return nil, fmt.Errorf("create tap %q: %w", t.Name, err)
	}
	if err := created(ctx, t.Name); err != nil {
		return nil, err
	}
	l, err := ByName(t.Name)
	if err != nil {
		return nil, err
	}
	set := Settings{MAC: t.MAC, Group: t.LinkGroup, Alias: t.Alias, Up: true}
	if t.MTU != l.Attrs().MTU {
		set.MTU = t.MTU
	}
	if err := Apply(l, set); err != nil {
		return l, err
	}
	if t.MAC != nil {
		l.Attrs().HardwareAddr = t.MAC
	}
	return l, nil
}

func createPersistentTap(t Tap) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq(t.Name)
	if err != nil {
		return err
	}
	req.SetUint16(uint16(unix.IFF_TAP|unix.IFF_TUN_EXCL) | uint16(t.Flags()))
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, req); err != nil {
		return fmt.Errorf("TUNSETIFF: %w", err)
	}
	if t.Owner != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, int(*t.Owner)); err != nil {
			return fmt.Errorf("TUNSETOWNER: %w", err)
		}
	}
	if t.Group != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, int(*t.Group)); err != nil {
			return fmt.Errorf("TUNSETGROUP: %w", err)
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}

// Macvtap describes a macvtap on a parent link.
type Macvtap struct {
	Name   string
	Parent netlink.Link
	// Mode is bridge, vepa, private or passthru.
	Mode   string
	MAC    net.HardwareAddr
	MTU    int
	TxQLen int
}

var macvlanModes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// ValidMacvtapMode reports whether mode names a macvtap mode.
func ValidMacvtapMode(mode string) bool {
	_, ok := macvlanModes[mode]
	return ok
}

// CreateMacvtap creates the macvtap and brings it up. An error after the
// macvtap exists leaves it in place (delete it by name).
func CreateMacvtap(ctx context.Context, m Macvtap) (netlink.Link, error) {
	mode, ok := macvlanModes[m.Mode]
	if !ok {
		return nil, fmt.Errorf("unknown macvtap mode %q", m.Mode)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = m.Name
	attrs.ParentIndex = m.Parent.Attrs().Index
	attrs.MTU = m.MTU
	attrs.HardwareAddr = m.MAC
	attrs.TxQLen = m.TxQLen
	mvt := &netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: attrs, Mode: mode}}
	if err := retry(func() error { return netlink.LinkAdd(mvt) }); err != nil {
		return nil, fmt.Errorf("create macvtap %q on %q: %w", m.Name, m.Parent.Attrs().Name, err)
	}
	if err := created(ctx, m.Name); err != nil {
		return nil, err
	}
	l, err := ByName(m.Name)
	if err != nil {
		return nil, err
	}
	if m.Mode == "passthru" && m.MAC != nil {
		// passthru takes the parent's MAC at creation; set the guest's.
		if err := SetMAC(l, m.MAC); err != nil {
			return l, err
		}
	}
	return l, SetUp(l)
}

// CreateBridge creates a bridge for the in-netns bridge mode, without
// multicast snooping (it joins one pod interface and one VM device), and
// brings it up. An error after the bridge exists leaves it in place
// (delete it by name).
func CreateBridge(ctx context.Context, name string, mtu int) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	snooping := false
	br := &netlink.Bridge{LinkAttrs: attrs, MulticastSnooping: &snooping}
	if err := retry(func() error { return netlink.LinkAdd(br) }); err != nil {
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	if err := created(ctx, name); err != nil {
		return nil, err
	}
	l, err := ByName(name)
	if err != nil {
		return nil, err
	}
	return l, SetUp(l)
}

// DisableLearning turns MAC learning off on bridge ports. For a bridge that
// only ever joins two ports (a pod interface and a VM device), flooding is
// forwarding, and the per-frame FDB update is saved.
func DisableLearning(ports ...netlink.Link) error {
	for _, p := range ports {
		if err := retry(func() error { return netlink.LinkSetLearning(p, false) }); err != nil {
			return fmt.Errorf("disable learning on %q: %w", p.Attrs().Name, err)
		}
	}
	return nil
}
