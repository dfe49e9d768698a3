package conformance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/pkg/masq"
)

// snapshot is the host state the hygiene checks compare: the host netns's
// links (type, master, MTU, MAC, up), addresses, qdiscs and routes,
// vmcni's nftables rule count, and every file, directory and socket under
// the watched directories (IPAM lock and last_reserved_ip files, and the
// directories holding a lock, excluded: host-local keeps them by design). It mirrors testutil.TakeSnapshot, which
// only tests can use, and adds directories and file types.
type snapshot struct {
	lines []string
}

// snapshotter takes host snapshots with a fixed set of watched directories
// and ignored links.
type snapshotter struct {
	dirs         []string
	ignore       map[string]bool
	ignorePrefix []string
}

func (s *snapshotter) skipLink(name string) bool {
	if s.ignore[name] {
		return true
	}
	for _, p := range s.ignorePrefix {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// take records the host state.
func (s *snapshotter) take() (snapshot, error) {
	var lines []string
	links, err := netlink.LinkList()
	if err != nil {
		return snapshot{}, fmt.Errorf("snapshot: list links: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if s.skipLink(a.Name) {
			continue
		}
		lines = append(lines, fmt.Sprintf("link %s type=%s master=%s mtu=%d mac=%s up=%v",
			a.Name, l.Type(), byIndex[a.MasterIndex], a.MTU, a.HardwareAddr, a.Flags&1 == 1))
		addrs, aerr := netlink.AddrList(l, netlink.FAMILY_ALL)
		if aerr != nil && !errors.As(aerr, new(netlink.LinkNotFoundError)) {
			return snapshot{}, fmt.Errorf("snapshot: addresses of %q: %w", a.Name, aerr)
		}
		for _, ad := range addrs {
			lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
		}
		qdiscs, _ := netlink.QdiscList(l) // a link may vanish meanwhile
		for _, q := range qdiscs {
			lines = append(lines, fmt.Sprintf("qdisc %s %s %s", a.Name, q.Type(), netlink.HandleStr(q.Attrs().Handle)))
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return snapshot{}, fmt.Errorf("snapshot: list routes: %w", err)
	}
	for _, r := range routes {
		if s.skipLink(byIndex[r.LinkIndex]) {
			continue
		}
		lines = append(lines, fmt.Sprintf("route %s dev=%s gw=%s", r.Dst, byIndex[r.LinkIndex], r.Gw))
	}
	if n, err := masq.CountAll(); err == nil {
		lines = append(lines, fmt.Sprintf("nft vmcni rules=%d", n))
	}
	for _, dir := range s.dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if path == dir {
				return nil
			}
			base := d.Name()
			if base == "lock" || strings.HasPrefix(base, "last_reserved_ip") {
				return nil
			}
			if d.IsDir() && bookkeeping(path) {
				// An IPAM plugin's per-network directory (host-local's
				// holds its lock): kept by design, like a shared bridge.
				return nil
			}
			lines = append(lines, fmt.Sprintf("%s %s", fileKind(d.Type()), path))
			return nil
		})
		if err != nil {
			return snapshot{}, fmt.Errorf("snapshot: walk %q: %w", dir, err)
		}
	}
	sort.Strings(lines)
	return snapshot{lines: lines}, nil
}

// bookkeeping reports whether dir holds a "lock" file.
func bookkeeping(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "lock"))
	return err == nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeSymlink != 0:
		return "symlink"
	default:
		return "file"
	}
}

// diff returns the lines that disappeared ("- ") and appeared ("+ ")
// between before and after.
func diff(before, after snapshot) []string {
	was := map[string]bool{}
	for _, l := range before.lines {
		was[l] = true
	}
	now := map[string]bool{}
	for _, l := range after.lines {
		now[l] = true
	}
	var out []string
	for _, l := range before.lines {
		if !now[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range after.lines {
		if !was[l] {
			out = append(out, "+ "+l)
		}
	}
	return out
}
