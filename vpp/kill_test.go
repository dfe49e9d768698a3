package vpp_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
)

// TestSIGKILLAtRandomPoints runs the real vm-vpp binary's ADD against the
// VPP stand-in served on its API socket (the production connector in
// another process) and kills it with SIGKILL at random points
// (testutil.KillSweep), 200 times per network kind; each time DEL or GC
// must leave VPP as it started but for the per-network object DEL keeps
// (bridge domain, gateway loopback), and no state, socket or lease file
// (host-local runs in-process: no empty-lease window).
func TestSIGKILLAtRandomPoints(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]any
		l3   bool
	}{
		{"vhost-user/l2", map[string]any{"mode": "server", "bridgeDomain": 10}, false},
		{"memif/l3", map[string]any{"interface": "memif", "network": "l3", "memif": map[string]any{"mode": "ip"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBinaryEnv(t, c.conf, c.l3)
			bin := testutil.Binaries(t)
			rt := testutil.Runtime("killed", "/var/run/netns/killed", "eth0")
			stdin := b.cni.PluginStdin(t, 0)
			testutil.KillSweep{
				Runs: 200,
				Add: func(int) *exec.Cmd {
					cmd := exec.Command(filepath.Join(bin, "vm-vpp"))
					cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+rt.ContainerID,
						"CNI_NETNS="+rt.NetNS, "CNI_IFNAME="+rt.IfName, "CNI_PATH="+bin)
					cmd.Stdin = bytes.NewReader(stdin)
					return cmd
				},
				Del: func(int) error { return b.cni.Del(rt) },
				GC:  func(int) error { return b.cni.GC() },
				Same: func(_ testing.TB, when string) {
					if c.l3 {
						b.assertOnlyGatewayKept()
					} else {
						assertVPPClean(t, b.vpp, 10)
					}
					b.assertNoLeftovers()
					if t.Failed() {
						t.Fatal(when)
					}
				},
			}.Run(t)
		})
	}
}
