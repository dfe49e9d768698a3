package socketdir

import (
	"testing"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
)

// TestDirsInjective: no two attachments share a socket directory.
func TestDirsInjective(t *testing.T) {
	keyprop.AssertInjective(t, "socket dir", keyprop.RandomKeys(2, 10000), func(k keyprop.Key) string {
		p, err := For("/run/x", k.ContainerID, k.IfName, "sock")
		if err != nil {
			t.Fatalf("%+v: %v", k, err)
		}
		return p.Dir
	})
}
