package conformance_test

import (
	"crypto/sha512"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// cnitoolResults is where cnitool v1.3.0 keeps libcni's result cache (it
// cannot be changed).
const cnitoolResults = "/var/lib/cni/results"

// TestCnitool drives vm-bridge through the real client cnitool v1.3.0:
// NETCONFPATH holds a vm-bridge conflist, CNI_PATH the built plugins;
// status, add, check, del on a test netns, for every mode. The result and
// hint are checked, and the host (and cnitool's result cache) is clean
// afterwards.
func TestCnitool(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			netDir := t.TempDir()
			name := "vmct-cnitool-" + mode
			if err := os.WriteFile(filepath.Join(netDir, "10-vmct.conflist"), conflist(name, e.vmBridge(mode)), 0o644); err != nil {
				t.Fatal(err)
			}
			ns := testutil.NewNS(t)
			dirs := []string{e.stateDir, e.ipamDir}
			before := testutil.TakeSnapshot(t, dirs, e.bridge)
			sum := sha512.Sum512([]byte(ns.Path))
			containerID := fmt.Sprintf("cnitool-%x", sum[:10])

			cnitool := func(args ...string) (string, error) {
				cmd := exec.Command(filepath.Join(e.bin, "cnitool"), args...)
				cmd.Env = append(os.Environ(), "NETCONFPATH="+netDir, "CNI_PATH="+e.bin, "CNI_IFNAME=eth0")
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					return stdout.String(), fmt.Errorf("cnitool %s: %w: %s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
				}
				return stdout.String(), nil
			}
			t.Cleanup(func() { _, _ = cnitool("del", name, ns.Path) })

			if _, err := cnitool("status", name, ns.Path); err != nil {
				t.Fatal(err)
			}
			out, err := cnitool("add", name, ns.Path)
			if err != nil {
				t.Fatal(err)
			}
			res := parseCnitoolResult(t, out)
			h, err := hint.Read(e.stateDir, containerID, "eth0")
			if err != nil {
				t.Fatalf("hint of the cnitool attachment: %v", err)
			}
			if err := hint.CheckResult(res, h); err != nil {
				t.Fatalf("cnitool's printed result vs hint: %v", err)
			}
			if err := netns.Do(ns.Path, func() error { _, err := link.ByName(h.DeviceName()); return err }); err != nil {
				t.Fatalf("device %q in the netns: %v", h.DeviceName(), err)
			}
			if _, err := cnitool("check", name, ns.Path); err != nil {
				t.Fatal(err)
			}
			if _, err := cnitool("del", name, ns.Path); err != nil {
				t.Fatal(err)
			}
			if _, err := cnitool("del", name, ns.Path); err != nil {
				t.Fatalf("second del: %v", err)
			}
			if testutil.FileExists(hint.Path(e.stateDir, containerID, "eth0")) {
				t.Fatal("hint file left after cnitool del")
			}
			cached, _ := filepath.Glob(filepath.Join(cnitoolResults, name+"-"+containerID+"-*"))
			if len(cached) > 0 {
				t.Fatalf("cnitool result cache left: %v", cached)
			}
			ns.Delete()
			testutil.AssertSameHost(t, before, dirs, e.bridge)
		})
	}
}

// parseCnitoolResult parses what cnitool add printed (a 1.1.0 result) and
// checks the pseudo-interface is there.
func parseCnitoolResult(t *testing.T, out string) *current.Result {
	t.Helper()
	r, err := current.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("cnitool add printed no result: %v\n%s", err, out)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) < 3 || len(res.IPs) == 0 {
		t.Fatalf("cnitool result lacks interfaces or IPs:\n%s", out)
	}
	return res
}
