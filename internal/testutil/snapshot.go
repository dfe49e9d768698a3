package testutil

import (
	"os"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/hostsnap"
	"github.com/vmcni/vmcni/internal/netns"
)

// Snapshot is what a test compares before and after (package hostsnap):
// the host netns's links, addresses, qdiscs and routes, vmcni's nftables
// rules, and what lies under some directories (state dir, IPAM data dir).
type Snapshot = hostsnap.Snapshot

// TakeSnapshot records the host state. Links named in ignore (and their
// addresses, qdiscs and routes) are left out: use it for a shared host bridge
// a test keeps on purpose.
func TakeSnapshot(t testing.TB, dirs []string, ignore ...string) Snapshot {
	t.Helper()
	skip := map[string]bool{}
	for _, n := range ignore {
		skip[n] = true
	}
	s, err := hostsnap.Take(hostsnap.Options{Dirs: dirs, SkipLink: func(name string) bool { return skip[name] }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// AssertSameHost fails t with a diff when the host differs from before.
func AssertSameHost(t testing.TB, before Snapshot, dirs []string, ignore ...string) {
	t.Helper()
	if diff := hostsnap.Diff(before, TakeSnapshot(t, dirs, ignore...)); len(diff) > 0 {
		t.Fatalf("host changed:\n%s", strings.Join(diff, "\n"))
	}
}

// FileExists reports whether path exists.
func FileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TakeNetnsSnapshot is TakeSnapshot of the netns at nsPath (links,
// addresses, routes; no files).
func TakeNetnsSnapshot(t testing.TB, nsPath string) Snapshot {
	t.Helper()
	var s Snapshot
	if err := netns.Do(nsPath, func() error { s = TakeSnapshot(t, nil); return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// AssertSameNetns fails t with a diff when the netns at nsPath differs
// from before.
func AssertSameNetns(t testing.TB, nsPath string, before Snapshot) {
	t.Helper()
	if err := netns.Do(nsPath, func() error { AssertSameHost(t, before, nil); return nil }); err != nil {
		t.Fatal(err)
	}
}
