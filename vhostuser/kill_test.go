package vhostuser_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vhostuser"
)

// TestSIGKILLAtRandomPoints runs the real vm-vhostuser binary's ADD on a
// real OVS-DPDK bridge and kills it with SIGKILL at random points
// (testutil.KillSweep), 200 times; each time DEL or GC must leave no OVS
// port, socket directory, record or lease (host-local runs in-process: no
// empty-lease window).
func TestSIGKILLAtRandomPoints(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	w := newWorld(t)
	bin := os.Getenv("CNI_PATH")
	ipamDir := filepath.Join(w.dir, "ipam")
	before := testutil.TakeSnapshot(t, []string{filepath.Join(w.dir, "state"), ipamDir})
	conf := w.conf(nil)
	testutil.KillSweep{
		Runs: 200,
		Add: func(int) *exec.Cmd {
			cmd := exec.Command(filepath.Join(bin, "vm-vhostuser"))
			cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=killed", "CNI_NETNS=/var/run/netns/none",
				"CNI_IFNAME=net1", "CNI_PATH="+bin)
			cmd.Stdin = bytes.NewReader(conf)
			return cmd
		},
		Del: func(int) error { return vhostuser.New().Del(args(conf, "killed")) },
		GC: func(int) error {
			return vhostuser.New().GC(args(w.conf(map[string]any{"cni.dev/valid-attachments": []types.GCAttachment{}}), ""))
		},
		Same: func(testing.TB, string) {
			w.assertClean(before)
		},
	}.Run(t)
}
