package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/vmcni/vmcni/internal/netns"
)

// RequiresRoot skips t unless it runs as root (it needs to create network
// namespaces and links).
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces and links")
	}
}

// UniqueName returns prefix followed by random hex, at most 15 bytes.
func UniqueName(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// NS is a named network namespace created for a test.
type NS struct {
	Name string
	Path string
}

// NewNS creates a named netns ("vmct..." under /var/run/netns) and deletes it
// when the test ends (unless the test already did).
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequiresRoot(t)
	name := UniqueName("vmct")
	path, err := netns.CreateNamed(name)
	if err != nil {
		t.Fatalf("create netns %q: %v", name, err)
	}
	ns := &NS{Name: name, Path: path}
	t.Cleanup(ns.Delete)
	return ns
}

// Delete removes the namespace (and with it its links). Deleting twice is fine.
func (n *NS) Delete() {
	_ = netns.DeleteNamed(n.Name)
}
