package conformance

import (
	"strings"

	"github.com/vmcni/vmcni/pkg/hostsnap"
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
	return hostsnap.Take(hostsnap.Options{Dirs: s.dirs, SkipLink: s.skipLink, EmptyDirs: true})
}

// diff returns the lines that disappeared ("- ") and appeared ("+ ")
// between before and after.
func diff(before, after snapshot) []string { return hostsnap.Diff(before, after) }
