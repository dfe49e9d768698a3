package testutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/pkg/masq"
)

// Snapshot is what a test compares before and after: the host netns's
// links, addresses, qdiscs and routes, vmcni's nftables rules, and the
// regular files under some directories (state dir, IPAM data dir; IPAM lock
// and last-reserved files excluded).
type Snapshot struct {
	Lines []string
}

// TakeSnapshot records the host state. Links named in ignore (and their
// addresses, qdiscs and routes) are left out: use it for a shared host bridge
// a test keeps on purpose.
func TakeSnapshot(t testing.TB, dirs []string, ignore ...string) Snapshot {
	t.Helper()
	skip := map[string]bool{}
	for _, n := range ignore {
		skip[n] = true
	}
	var lines []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("snapshot links: %v", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if skip[a.Name] {
			continue
		}
		lines = append(lines, fmt.Sprintf("link %s type=%s master=%s mtu=%d mac=%s up=%v",
			a.Name, l.Type(), byIndex[a.MasterIndex], a.MTU, a.HardwareAddr, a.Flags&1 == 1))
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
		}
		qdiscs, _ := netlink.QdiscList(l)
		for _, q := range qdiscs {
			lines = append(lines, fmt.Sprintf("qdisc %s %s %s", a.Name, q.Type(), netlink.HandleStr(q.Attrs().Handle)))
		}
	}
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_ALL)
	for _, r := range routes {
		if skip[byIndex[r.LinkIndex]] {
			continue
		}
		lines = append(lines, fmt.Sprintf("route %s dev=%s gw=%s", r.Dst, byIndex[r.LinkIndex], r.Gw))
	}
	if n, err := masq.CountAll(); err == nil {
		lines = append(lines, fmt.Sprintf("nft vmcni rules=%d", n))
	}
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			base := d.Name()
			if base == "lock" || strings.HasPrefix(base, "last_reserved_ip") {
				return nil
			}
			lines = append(lines, "file "+path)
			return nil
		})
	}
	sort.Strings(lines)
	return Snapshot{Lines: lines}
}

// AssertSameHost fails t with a diff when the host differs from before.
func AssertSameHost(t testing.TB, before Snapshot, dirs []string, ignore ...string) {
	t.Helper()
	after := TakeSnapshot(t, dirs, ignore...)
	was := map[string]bool{}
	for _, l := range before.Lines {
		was[l] = true
	}
	now := map[string]bool{}
	for _, l := range after.Lines {
		now[l] = true
	}
	var diff []string
	for _, l := range before.Lines {
		if !now[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range after.Lines {
		if !was[l] {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 0 {
		t.Fatalf("host changed:\n%s", strings.Join(diff, "\n"))
	}
}

// FileExists reports whether path exists.
func FileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
