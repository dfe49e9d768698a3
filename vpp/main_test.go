package vpp_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// withHostLocal gives e's config an IPAM section using the reference
// host-local plugin (built into a temp CNI_PATH) on 10.77.0.0/24, gateway
// 10.77.0.1, and returns its data directory.
func withHostLocal(t *testing.T, e *env) string {
	t.Helper()
	t.Setenv("CNI_PATH", testutil.Binaries(t))
	dir := t.TempDir()
	e.conf["ipam"] = map[string]any{
		"type": "host-local", "dataDir": dir,
		"ranges": []any{[]any{map[string]any{"subnet": "10.77.0.0/24"}}},
		"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
	}
	return dir
}

var leaseFile = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)

// leases lists host-local's allocated addresses.
func leases(t testing.TB, dataDir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dataDir, netName))
	var out []string
	for _, en := range entries {
		if leaseFile.MatchString(en.Name()) {
			out = append(out, en.Name())
		}
	}
	return out
}
