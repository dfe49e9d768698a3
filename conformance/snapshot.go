package conformance

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmcni/vmcni/internal/hostsnap"
)

// snapshot is the host state the hygiene checks compare (package
// hostsnap): the host netns's links, addresses, qdiscs and routes, vmcni's
// nftables rule count, and every file, socket, symlink and empty directory
// under the watched directories (IPAM bookkeeping excluded).
type snapshot = hostsnap.Snapshot

// snapshotter takes host snapshots with a fixed set of watched directories
// and ignored links.
type snapshotter struct {
	dirs         []string
	ignore       map[string]bool
	ignorePrefix []string
	// extra is Config.ExtraState; nil without one.
	extra func() ([]string, error)
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

// take records the host state, and the caller's extra state as lines
// starting with "state ".
func (s *snapshotter) take() (snapshot, error) {
	snap, err := hostsnap.Take(hostsnap.Options{Dirs: s.dirs, SkipLink: s.skipLink, EmptyDirs: true})
	if err != nil || s.extra == nil {
		return snap, err
	}
	lines, err := s.extra()
	if err != nil {
		return snapshot{}, fmt.Errorf("snapshot: extra state: %w", err)
	}
	for _, l := range lines {
		snap.Lines = append(snap.Lines, "state "+l)
	}
	sort.Strings(snap.Lines)
	return snap, nil
}

// diff returns the lines that disappeared ("- ") and appeared ("+ ")
// between before and after.
func diff(before, after snapshot) []string { return hostsnap.Diff(before, after) }
