// Package hostsnap records what a CNI plugin may change on a host, as
// sorted text lines, so that a test or the conformance suite can compare
// the host before and after: the links of the calling thread's network
// namespace (type, master, MTU, MAC, up) with their addresses and qdiscs,
// its routes, vmcni's nftables rule count, and what lies under some
// directories.
//
// Under a directory it lists every file, socket and symlink, and, when
// asked, every empty directory (a directory with entries is implied by
// them). IPAM
// bookkeeping is left out, as host-local keeps it by design: files named
// "lock" or "last_reserved_ip*" (so a directory holding only those is
// neither listed nor empty). A directory that does not exist lists
// nothing.
package hostsnap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/masq"
)

// Snapshot is the recorded state, one sorted line per fact.
type Snapshot struct {
	Lines []string
}

// Options say what to record.
type Options struct {
	// Dirs are the directories whose content is recorded.
	Dirs []string
	// EmptyDirs also records empty directories under Dirs: a plugin's own
	// state must leave none, while caches such as libcni's keep theirs.
	EmptyDirs bool
	// SkipLink, when set, leaves out the links it reports true for, with
	// their addresses, qdiscs and routes (a shared host bridge, links of
	// other software).
	SkipLink func(name string) bool
}

// Take records the host state as seen from the calling thread.
func Take(o Options) (Snapshot, error) {
	skip := o.SkipLink
	if skip == nil {
		skip = func(string) bool { return false }
	}
	lines, err := netLines(skip)
	if err != nil {
		return Snapshot{}, err
	}
	if n, err := masq.CountAll(); err == nil {
		lines = append(lines, fmt.Sprintf("nft vmcni rules=%d", n))
	}
	for _, dir := range o.Dirs {
		d, derr := dirLines(dir, o.EmptyDirs)
		if derr != nil {
			return Snapshot{}, derr
		}
		lines = append(lines, d...)
	}
	sort.Strings(lines)
	return Snapshot{Lines: lines}, nil
}

// netLines is netDump, again when the kernel interrupted a dump (links
// changed meanwhile: a netns being torn down, another test).
func netLines(skip func(string) bool) ([]string, error) {
	for attempt := 0; ; attempt++ {
		lines, err := netDump(skip)
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 9 {
			return lines, err
		}
	}
}

func netDump(skip func(string) bool) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("snapshot: list links: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		if skip(a.Name) {
			continue
		}
		lines = append(lines, fmt.Sprintf("link %s type=%s master=%s mtu=%d mac=%s up=%v",
			a.Name, l.Type(), byIndex[a.MasterIndex], a.MTU, a.HardwareAddr, a.Flags&1 == 1))
		addrs, aerr := netlink.AddrList(l, netlink.FAMILY_ALL)
		if aerr != nil && !errors.As(aerr, new(netlink.LinkNotFoundError)) {
			return nil, fmt.Errorf("snapshot: addresses of %q: %w", a.Name, aerr)
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
		return nil, fmt.Errorf("snapshot: list routes: %w", err)
	}
	for _, r := range routes {
		if skip(byIndex[r.LinkIndex]) {
			continue
		}
		lines = append(lines, fmt.Sprintf("route %s dev=%s gw=%s", r.Dst, byIndex[r.LinkIndex], r.Gw))
	}
	return lines, nil
}

func dirLines(dir string, emptyDirs bool) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile, or never there
			}
			return err
		}
		if path == dir {
			return nil
		}
		switch {
		case d.IsDir():
			if !emptyDirs {
				return nil
			}
			if entries, rerr := os.ReadDir(path); rerr == nil && len(entries) == 0 {
				lines = append(lines, "dir "+path)
			}
		case bookkeeping(d.Name()):
		default:
			lines = append(lines, fmt.Sprintf("%s %s", fileKind(d.Type()), path))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: walk %q: %w", dir, err)
	}
	return lines, nil
}

// bookkeeping reports whether a file name is IPAM bookkeeping.
func bookkeeping(name string) bool {
	return name == "lock" || strings.HasPrefix(name, "last_reserved_ip")
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeSymlink != 0:
		return "symlink"
	default:
		return "file"
	}
}

// Diff returns the lines that disappeared ("- ") and appeared ("+ ")
// between before and after; none when they are equal.
func Diff(before, after Snapshot) []string {
	was := map[string]bool{}
	for _, l := range before.Lines {
		was[l] = true
	}
	now := map[string]bool{}
	for _, l := range after.Lines {
		now[l] = true
	}
	var out []string
	for _, l := range before.Lines {
		if !now[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range after.Lines {
		if !was[l] {
			out = append(out, "+ "+l)
		}
	}
	return out
}
