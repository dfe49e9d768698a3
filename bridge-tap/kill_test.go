package bridgetap_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
)

// TestSIGKILLAtRandomPoints runs the real vm-bridge binary's ADD and kills
// it with SIGKILL at random points (testutil.KillSweep), 200 times per
// IPAM across the three modes: static, host-local in-process and the
// host-local binary (ipamExec); each time DEL or GC must leave the host,
// the pod netns, the state and the IPAM leases exactly as before.
//
// With the host-local binary, one window is host-local's own
// (testutil.RemoveEmptyLeases): the sweep counts and removes the empty
// lease files it leaves; any other difference fails the test. The
// in-process host-local has no such window.
func TestSIGKILLAtRandomPoints(t *testing.T) {
	for _, ipamType := range []string{"static", "host-local", "host-local-exec"} {
		t.Run(ipamType, func(t *testing.T) {
			e := newEnv(t)
			t.Setenv("CNI_PATH", e.bin)
			ns := testutil.NewNS(t)
			nsBefore := testutil.TakeNetnsSnapshot(t, ns.Path)
			hostBefore := testutil.TakeSnapshot(t, e.dirs(), e.bridge)
			ipam := e.ipam()
			if ipamType == "static" {
				ipam = map[string]any{"type": "static", "addresses": []map[string]string{{"address": strings.Replace(e.subnet, "0/24", "2/24", 1)}}}
			}
			extra := map[string]any{"ipMasq": true, "ipam": ipam, "ipamExec": ipamType == "host-local-exec"}
			conf := func(i int) *inProcess {
				return &inProcess{e: e, conf: e.vmBridge(modes[i%len(modes)], extra)}
			}
			emptyLeases := 0
			testutil.KillSweep{
				Runs: 200,
				Add: func(i int) *exec.Cmd {
					cmd := exec.Command(filepath.Join(e.bin, "vm-bridge"))
					cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=killed", "CNI_NETNS="+ns.Path,
						"CNI_IFNAME=eth0", "CNI_PATH="+e.bin)
					cmd.Stdin = bytes.NewReader(conf(i).args("killed", ns.Path, nil).StdinData)
					return cmd
				},
				Del: func(i int) error { return conf(i).del("killed", ns.Path, nil) },
				GC:  func(i int) error { return conf(i).gc() },
				Same: func(t testing.TB, when string) {
					t.Helper()
					if ipamType == "host-local-exec" {
						emptyLeases += testutil.RemoveEmptyLeases(t, e.ipamDir)
					}
					testutil.AssertSameNetns(t, ns.Path, nsBefore)
					testutil.AssertSameHost(t, hostBefore, e.dirs(), e.bridge)
				},
			}.Run(t)
			if ipamType == "host-local-exec" {
				t.Logf("empty lease files host-local left (its own window, removed by the test): %d", emptyLeases)
			}
		})
	}
}
