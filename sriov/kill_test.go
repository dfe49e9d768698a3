package sriov_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// TestSIGKILLAtRandomPoints runs the vm-sriov-sim binary's ADD (vm-sriov
// on the simulated PF) with every knob set and kills it with SIGKILL at
// random points (testutil.KillSweep), 200 times, netdev and vfio modes in
// turn; each time DEL or GC must restore the VF (driver, knobs, netdev
// back in the host), the pod netns, the records, the allocation and the
// host-local leases (host-local runs in-process: no empty-lease window).
func TestSIGKILLAtRandomPoints(t *testing.T) {
	e := newEnv(t, 1, false)
	t.Setenv("CNI_PATH", e.bin)
	pod := testutil.NewNS(t)
	conf := func(i int) *inProcess {
		return &inProcess{e: e, conf: e.conf(modes[i%len(modes)], 0, allKnobs(map[string]any{"mtu": 1400}))}
	}
	simBefore, hostBefore, podBefore := e.k.State(), e.snapshot(), testutil.TakeNetnsSnapshot(t, pod.Path)
	testutil.KillSweep{
		Runs: 200,
		Add: func(i int) *exec.Cmd {
			cmd := exec.Command(filepath.Join(e.bin, sriovsim.PluginType))
			cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=killed", "CNI_NETNS="+pod.Path,
				"CNI_IFNAME=net1", "CNI_PATH="+e.bin)
			cmd.Stdin = bytes.NewReader(conf(i).args("killed", pod.Path, nil).StdinData)
			return cmd
		},
		Start: func(cmd *exec.Cmd) error { return e.inHost(cmd.Start) },
		Del:   func(i int) error { return conf(i).del("killed", pod.Path) },
		GC:    func(i int) error { return conf(i).gc() },
		Same: func(t testing.TB, when string) {
			t.Helper()
			e.k.AssertState(t, simBefore)
			e.assertSnapshot(hostBefore)
			testutil.AssertSameNetns(t, pod.Path, podBefore)
		},
	}.Run(t)
	e.k.TakeWrites()
}
