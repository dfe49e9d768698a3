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

	"github.com/vmcni/vmcni/pkg/link"
)

// netdev is a VF's netdev stand-in: a veth pair whose VF side is the VF's
// netdev and whose peer never leaves the host netns. The kernel goroutine
// knows the pair by the peer's ifindex, which does not change: the VF side
// is the veth whose IFLA_LINK is the peer, under whatever name and
// whichever ifindex it has after a trip through a pod netns.
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

// createNetdev makes VF addr's netdev appear, as binding iavf does.
func (k *Kernel) createNetdev(addr string) error {
	nd := k.netdevs[addr]
	return k.plug(addr, nd, nd.name)
}

// plug creates the pair of nd in the host netns, the VF side called name,
// and lists it in the VF's net/ directory (instead of the old entry).
func (k *Kernel) plug(addr string, nd *netdev, name string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr, attrs.MTU = name, nd.mac, 1500
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: nd.peer, PeerHardwareAddr: nd.peerMAC}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create VF netdev stand-in %q (peer %q): %w", name, nd.peer, err)
	}
	peer, err := link.ByName(nd.peer)
	if err != nil {
		return err
	}
	k.mu.Lock()
	old := nd.cur
	nd.cur, nd.peerIndex, nd.home = name, peer.Attrs().Index, true
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
	nd.cur, nd.peerIndex, nd.home = "", 0, false // untracked first: its link events are not a refund
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
// peer disappeared, a rename of a VF netdev, the VF netdev leaving or
// entering the host netns.
func (k *Kernel) linkEvent(u netlink.LinkUpdate) {
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
		nd.home = false
		k.mu.Unlock()
	default:
		k.mu.Lock()
		old := nd.cur
		nd.home, nd.cur = true, a.Name
		k.mu.Unlock()
		if old != a.Name {
			_ = os.RemoveAll(filepath.Join(k.netDir(addr), old))
		}
		if err := k.writeAddress(addr, a.Name, a.HardwareAddr); err != nil {
			k.fail("list netdev %q of %q: %v", a.Name, addr, err)
		}
	}
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

// refund brings VF addr's netdev back to the host netns under a new name:
// its pair died with a pod netns, and a physical netdev would have
// returned.
func (k *Kernel) refund(addr string, nd *netdev) {
	k.mu.Lock()
	nd.peerIndex, nd.home = 0, false
	k.mu.Unlock()
	name := fmt.Sprintf("%sr%d", k.prefix, nd.vf)
	if err := k.plug(addr, nd, name); err != nil {
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
