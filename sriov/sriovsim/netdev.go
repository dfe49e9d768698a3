package sriovsim

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
)

// netdev is a VF's netdev stand-in: a veth pair whose VF side is the VF's
// netdev and whose peer never leaves the host netns. The kernel goroutine
// knows the pair by the peer's ifindex, which does not change: the VF side
// is the veth whose IFLA_LINK is the peer, under whatever name and
// whichever ifindex it has after a trip through a pod netns.
//
// While the VF side is away, the kernel goroutine follows its MTU through
// the link events of the netns it went to (by its id in the host netns,
// from the IFLA_NEW_NETNSID of the host's RTM_DELLINK), so that a refund
// can give the netdev back the MTU it had in the pod, as the kernel does.
type netdev struct {
	// vf, name, peer, mac and peerMAC are fixed at Start: the VF's index,
	// the names bind gives the VF side and the peer, and their MACs.
	vf           int
	name, peer   string
	mac, peerMAC net.HardwareAddr

	// cur is the VF side's name in the VF's net/ directory, "" when the VF
	// has no netdev.
	cur string
	// peerIndex is the live peer's ifindex, 0 when the VF has no netdev.
	peerIndex int
	// home says the VF side is in the host netns.
	home bool
	// mtu is the VF side's MTU as last seen, wherever it is; 0 when the
	// VF has no netdev.
	mtu int
	// nsid is, while the VF side is away, the id in the host netns of the
	// netns it is in; -1 when home or unknown.
	nsid int
}

func (k *Kernel) netDir(addr string) string { return k.Abs(devDir(addr) + "/net") }

// createNetdevs gives every VF its netdev (at Start; the thread is in the
// host netns).
func (k *Kernel) createNetdevs() error {
	addrs := make([]string, 0, len(k.netdevs))
	for addr := range k.netdevs {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		if err := k.createNetdev(addr); err != nil {
			return err
		}
	}
	return nil
}

// defaultMTU is the MTU of a new VF netdev stand-in (and of its peer).
const defaultMTU = 1500

// createNetdev makes VF addr's netdev appear, as binding iavf does.
func (k *Kernel) createNetdev(addr string) error {
	nd := k.netdevs[addr]
	return k.plug(addr, nd, nd.name, defaultMTU)
}

// plug creates the pair of nd in the host netns, the VF side called name
// with MTU mtu (the peer's is defaultMTU), and lists it in the VF's net/
// directory (instead of the old entry).
func (k *Kernel) plug(addr string, nd *netdev, name string, mtu int) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr, attrs.MTU = name, nd.mac, defaultMTU // the peer gets it too
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: nd.peer, PeerHardwareAddr: nd.peerMAC}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create VF netdev stand-in %q (peer %q): %w", name, nd.peer, err)
	}
	peer, err := link.ByName(nd.peer)
	if err != nil {
		return err
	}
	if mtu != defaultMTU {
		var side netlink.Link
		if side, err = link.ByName(name); err == nil {
			err = link.SetMTU(side, mtu)
		}
		if err != nil {
			return fmt.Errorf("set the MTU of VF netdev stand-in %q: %w", name, err)
		}
	}
	k.mu.Lock()
	old := nd.cur
	nd.cur, nd.peerIndex, nd.home, nd.mtu, nd.nsid = name, peer.Attrs().Index, true, mtu, -1
	k.mu.Unlock()
	if old != "" && old != name {
		_ = os.RemoveAll(filepath.Join(k.netDir(addr), old))
	}
	return k.writeAddress(addr, name, nd.mac)
}

// writeAddress lists netdev name of VF addr with its MAC, replacing the
// address file atomically (vm-sriov may be reading it).
func (k *Kernel) writeAddress(addr, name string, mac net.HardwareAddr) error {
	dir := filepath.Join(k.netDir(addr), name)
	content := []byte(mac.String() + "\n")
	if old, err := os.ReadFile(filepath.Join(dir, "address")); err == nil && bytes.Equal(old, content) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".address.tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "address"))
}

// destroyNetdev makes VF addr's netdev disappear wherever it is, as
// unbinding iavf does: deleting the peer deletes the pair.
func (k *Kernel) destroyNetdev(addr string) error {
	nd := k.netdevs[addr]
	k.mu.Lock()
	index := nd.peerIndex
	nd.cur, nd.peerIndex, nd.home, nd.mtu, nd.nsid = "", 0, false, 0, -1 // untracked first: its link events are not a refund
	k.mu.Unlock()
	_ = os.RemoveAll(k.netDir(addr))
	return deleteIndex(index)
}

func deleteIndex(index int) error {
	if index == 0 {
		return nil
	}
	l, err := netlink.LinkByIndex(index)
	if err == nil {
		err = netlink.LinkDel(l)
	}
	if err != nil && !link.IsNotFound(err) {
		return fmt.Errorf("delete link %d: %w", index, err)
	}
	return nil
}

// removeNetdevs deletes every link the simulator created (at stop).
func (k *Kernel) removeNetdevs() {
	var indexes []int
	k.mu.Lock()
	for _, nd := range k.netdevs {
		indexes = append(indexes, nd.peerIndex)
		nd.peerIndex, nd.home = 0, false
	}
	k.mu.Unlock()
	for _, i := range indexes {
		if err := deleteIndex(i); err != nil {
			k.t.Logf("sriovsim: %v", err)
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, k.prefix) {
			if err := deleteIndex(l.Attrs().Index); err != nil {
				k.t.Logf("sriovsim: %v", err)
			}
		}
	}
}

// linkEvent applies one link event of the host netns: a refund when a
// peer disappeared, a rename or MTU change of a VF netdev, the VF netdev
// leaving or entering the host netns. Events of other netns go to
// awayEvent.
func (k *Kernel) linkEvent(u linkMsg) {
	if u.nsid != hostNsid {
		k.awayEvent(u)
		return
	}
	a := u.Attrs()
	deleted := u.Header.Type == unix.RTM_DELLINK
	addr, nd, isPeer := k.owner(u.Link)
	if nd == nil {
		return
	}
	switch {
	case isPeer && deleted:
		k.refund(addr, nd)
	case isPeer:
	case deleted:
		k.mu.Lock()
		nd.home, nd.nsid = false, u.newNsid // -1 when not a move: it died
		k.mu.Unlock()
	default:
		k.mu.Lock()
		old := nd.cur
		nd.home, nd.cur, nd.mtu, nd.nsid = true, a.Name, a.MTU, -1
		k.mu.Unlock()
		if old != a.Name {
			_ = os.RemoveAll(filepath.Join(k.netDir(addr), old))
		}
		if err := k.writeAddress(addr, a.Name, a.HardwareAddr); err != nil {
			k.fail("list netdev %q of %q: %v", a.Name, addr, err)
		}
	}
}

// awayEvent applies one link event of the netns with id u.nsid in the host
// netns: the MTU of a VF side that is there, or its leaving for another
// netns. A VF side away is the veth whose IFLA_LINK is its peer's ifindex,
// in the netns it went to.
func (k *Kernel) awayEvent(u linkMsg) {
	a := u.Attrs()
	if u.Type() != "veth" || a.ParentIndex == 0 {
		return
	}
	k.mu.Lock()
	var nd *netdev
	for _, c := range k.netdevs {
		if c.peerIndex != 0 && !c.home && c.nsid == u.nsid && a.ParentIndex == c.peerIndex {
			nd = c
		}
	}
	if nd == nil {
		k.mu.Unlock()
		return
	}
	if u.Header.Type != unix.RTM_DELLINK {
		nd.mtu = a.MTU
		k.mu.Unlock()
		return
	}
	peerIndex := nd.peerIndex
	k.mu.Unlock()
	if u.newNsid < 0 {
		return // it died with its netns: the peer's RTM_DELLINK follows
	}
	// It moved on; u.newNsid is the new netns's id in the old one, not in
	// the host netns: ask the peer where its other end is now (an MTU set
	// there before this runs is missed when that netns had no id in the
	// host netns yet).
	nsid := -1
	if peer, err := netlink.LinkByIndex(peerIndex); err == nil {
		nsid = peer.Attrs().NetNsID
	}
	k.mu.Lock()
	if nd.peerIndex == peerIndex && !nd.home {
		nd.nsid = nsid
	}
	k.mu.Unlock()
}

// owner finds the stand-in l belongs to, and whether l is its peer (else
// its VF side, seen in the host netns).
func (k *Kernel) owner(l netlink.Link) (addr string, nd *netdev, isPeer bool) {
	a := l.Attrs()
	k.mu.Lock()
	defer k.mu.Unlock()
	for addr, nd := range k.netdevs {
		switch {
		case nd.peerIndex == 0:
		case a.Index == nd.peerIndex:
			return addr, nd, true
		case isSide(l, nd.peerIndex):
			return addr, nd, false
		}
	}
	return "", nil, false
}

// isSide reports whether l (in the host netns) is the other end of the
// veth whose end in the host netns has ifindex peer.
func isSide(l netlink.Link, peer int) bool {
	a := l.Attrs()
	return l.Type() == "veth" && a.Index != peer && a.ParentIndex == peer && a.NetNsID < 0
}

// refund brings VF addr's netdev back to the host netns under a new name,
// with the MTU it had last: its pair died with a pod netns, and a physical
// netdev would have returned.
func (k *Kernel) refund(addr string, nd *netdev) {
	k.mu.Lock()
	mtu := nd.mtu
	nd.peerIndex, nd.home, nd.nsid = 0, false, -1
	k.mu.Unlock()
	if mtu == 0 {
		mtu = defaultMTU
	}
	name := fmt.Sprintf("%sr%d", k.prefix, nd.vf)
	if err := k.plug(addr, nd, name, mtu); err != nil {
		k.fail("refund the netdev of %q: %v", addr, err)
	}
}

// caughtUp reports whether the tracked netdevs match the host netns's links
// (the thread is in the host netns): every tracked peer exists, and the VF
// side is in the host netns, under its tracked name, exactly when tracked
// as home. A mismatch means link events are still queued.
func (k *Kernel) caughtUp() bool {
	links, err := netlink.LinkList()
	if err != nil {
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			k.fail("list links: %v", err)
		}
		return false
	}
	exists := map[int]bool{}
	for _, l := range links {
		exists[l.Attrs().Index] = true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, nd := range k.netdevs {
		if nd.peerIndex == 0 {
			continue
		}
		if !exists[nd.peerIndex] {
			return false
		}
		var side netlink.Link
		for _, l := range links {
			if isSide(l, nd.peerIndex) {
				side = l
			}
		}
		if (side != nil) != nd.home || side != nil && side.Attrs().Name != nd.cur {
			return false
		}
	}
	return true
}
