// Package hostcheck compares host snapshots (internal/testutil) while other
// test suites run on the same host: links named with the shared test
// prefix "vmct" that the calling test does not claim belong to those
// suites and are left out of the comparison. Everything else (other
// links, addresses, qdiscs, routes, nftables rule count, files) is
// compared exactly.
package hostcheck

import (
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/hostsnap"
	"github.com/vmcni/vmcni/internal/testutil"
)

// linkOf returns the link name a snapshot line is about, or "".
func linkOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	switch f[0] {
	case "link", "addr", "qdisc":
		return f[1]
	case "route":
		for _, x := range f[2:] {
			if name, ok := strings.CutPrefix(x, "dev="); ok {
				return name
			}
		}
	}
	return ""
}

// mineOnly leaves out the "vmct*" links mine does not claim.
func mineOnly(s hostsnap.Snapshot, mine func(string) bool) hostsnap.Snapshot {
	var out hostsnap.Snapshot
	for _, l := range s.Lines {
		if name := linkOf(l); strings.HasPrefix(name, "vmct") && !mine(name) {
			continue
		}
		out.Lines = append(out.Lines, l)
	}
	return out
}

// AssertSameHost fails t when the host differs from before, ignoring
// "vmct*" links mine does not claim.
func AssertSameHost(t testing.TB, before testutil.Snapshot, dirs []string, mine func(link string) bool) {
	t.Helper()
	after := testutil.TakeSnapshot(t, dirs)
	if diff := hostsnap.Diff(mineOnly(before, mine), mineOnly(after, mine)); len(diff) > 0 {
		t.Fatalf("host changed:\n%s", strings.Join(diff, "\n"))
	}
}
