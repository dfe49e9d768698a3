package bridgetap_test

import (
	"errors"
	"os"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

var nsDo = netns.Do

var modes = []string{bridgetap.ModeTCFilter, bridgetap.ModeBridge, bridgetap.ModeMacvtap}

// TestLifecycle runs ADD, CHECK, DEL, DEL through libcni with the built
// binaries for every mode, standalone and chained after the reference bridge
// and ptp plugins, and checks the plumbing, the hint and a clean host.
func TestLifecycle(t *testing.T) {
	setups := []struct {
		name    string
		plugins func(e *testEnv, mode string) []map[string]any
	}{
		{"standalone", func(e *testEnv, mode string) []map[string]any {
			return []map[string]any{e.vmBridge(mode, nil)}
		}},
		{"after-bridge", func(e *testEnv, mode string) []map[string]any {
			return []map[string]any{e.refBridge(), e.chainedVMBridge(mode)}
		}},
		{"after-ptp", func(e *testEnv, mode string) []map[string]any {
			return []map[string]any{e.refPtp(), e.chainedVMBridge(mode)}
		}},
	}
	for _, setup := range setups {
		for _, mode := range modes {
			t.Run(setup.name+"/"+mode, func(t *testing.T) {
				e := newEnv(t)
				cni := e.cni("1.1.0", setup.plugins(e, mode)...)
				ns := testutil.NewNS(t)
				rt := testutil.Runtime(testutil.UniqueName("c"), ns.Path, "eth0")

				res, err := cni.Add(rt)
				if err != nil {
					t.Fatalf("ADD: %v", err)
				}
				h := assertPlumbing(t, e, res, rt.ContainerID, ns.Path, mode)
				if err := cni.Check(rt); err != nil {
					t.Fatalf("CHECK: %v", err)
				}
				if err := hint.CheckResult(res, h); err != nil {
					t.Fatalf("result vs hint: %v", err)
				}
				if err := cni.Del(rt); err != nil {
					t.Fatalf("DEL: %v", err)
				}
				if err := cni.Del(rt); err != nil {
					t.Fatalf("second DEL: %v", err)
				}
				assertNetnsBare(t, ns.Path)
				e.assertClean()
			})
		}
	}
}

// assertPlumbing checks the result, the hint file and the links of one
// attachment, and returns the hint.
func assertPlumbing(t *testing.T, e *testEnv, res *current.Result, containerID, nsPath, mode string) *hint.Hint {
	t.Helper()
	h, err := hint.Read(e.stateDir, containerID, "eth0")
	if err != nil {
		t.Fatalf("read hint: %v", err)
	}
	pseudo := hint.PseudoInterfaces(res, containerID)
	if len(pseudo) != 1 {
		t.Fatalf("want one pseudo-interface, got %d in %+v", len(pseudo), res.Interfaces)
	}
	for _, ip := range res.IPs {
		if ip.Interface == nil {
			t.Fatalf("ip %s without interface index", ip.Address.String())
		}
	}
	if len(h.Guest.IPs) == 0 || h.Guest.MTU == 0 {
		t.Fatalf("hint guest section incomplete: %+v", h.Guest)
	}
	pod := linkIn(t, nsPath, "eth0")
	switch mode {
	case bridgetap.ModeTCFilter, bridgetap.ModeBridge:
		if h.Kind != hint.KindTap || h.Tap.Wiring != mode {
			t.Fatalf("hint kind %q wiring %+v", h.Kind, h.Tap)
		}
		tap := linkIn(t, nsPath, h.Tap.Name)
		if _, ok := tap.(*netlink.Tuntap); !ok {
			t.Fatalf("%q is %s, not a tap", h.Tap.Name, tap.Type())
		}
		if mode == bridgetap.ModeTCFilter && pod.Attrs().HardwareAddr.String() != h.Guest.MAC {
			t.Fatalf("tcfilter: guest mac %s differs from pod mac %s", h.Guest.MAC, pod.Attrs().HardwareAddr)
		}
		if mode == bridgetap.ModeBridge && (pod.Attrs().MasterIndex == 0 || pod.Attrs().MasterIndex != tap.Attrs().MasterIndex) {
			t.Fatal("bridge: pod interface and tap are not on one bridge")
		}
	case bridgetap.ModeMacvtap:
		if h.Kind != hint.KindMacvtap || h.Macvtap.Major == 0 {
			t.Fatalf("hint macvtap section: %+v", h.Macvtap)
		}
		mvt := linkIn(t, nsPath, h.Macvtap.Name)
		if mvt.Attrs().HardwareAddr.String() != h.Guest.MAC {
			t.Fatalf("macvtap mac %s, pod mac %s, guest mac %s", mvt.Attrs().HardwareAddr, pod.Attrs().HardwareAddr, h.Guest.MAC)
		}
	}
	return h
}

// assertNetnsBare checks that only lo is left in the netns (chained, the
// previous plugin's DEL removed its veth).
func assertNetnsBare(t *testing.T, nsPath string) {
	t.Helper()
	inNS(t, nsPath, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				return errors.New("link left in netns: " + l.Attrs().Name)
			}
		}
		return nil
	})
}

// TestDelWithoutAdd: DEL of an attachment that never existed succeeds and
// changes nothing, for every mode.
func TestDelWithoutAdd(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			ns := testutil.NewNS(t)
			cni := e.cni("1.1.0", e.vmBridge(mode, nil))
			if err := cni.Del(testutil.Runtime("never-added", ns.Path, "eth0")); err != nil {
				t.Fatalf("DEL without ADD: %v", err)
			}
			if err := cni.Del(testutil.Runtime("never-added", "", "eth0")); err != nil {
				t.Fatalf("DEL without ADD and netns: %v", err)
			}
			e.assertClean()
		})
	}
}

// TestDelOfRefusedConfig: ADD refuses an invalid config before it does
// anything, so DEL of it succeeds (a runtime retries a failing DEL for
// ever: the pod would hang in Terminating); once an ADD with a valid config
// left a record, DEL with the network edited to an invalid one fails (code
// 7) and keeps the record, and DEL with the valid config cleans up.
func TestDelOfRefusedConfig(t *testing.T) {
	e := newEnv(t)
	ns := testutil.NewNS(t)
	bad := e.cni("1.1.0", e.vmBridge("teleport", nil))
	rt := testutil.Runtime(testutil.UniqueName("c"), ns.Path, "eth0")
	if _, err := bad.Add(rt); !testutil.ExpectCode(t, "ADD", err, 7) {
		return
	}
	if err := bad.Del(rt); err != nil {
		t.Fatalf("DEL of a refused ADD: %v", err)
	}
	e.assertClean()

	good := e.cni("1.1.0", e.vmBridge(bridgetap.ModeTCFilter, nil))
	if _, err := good.Add(rt); err != nil {
		t.Fatal(err)
	}
	if err := bad.Del(rt); !testutil.ExpectCode(t, "DEL with a record", err, 7) {
		return
	}
	if !testutil.FileExists(hint.Path(e.stateDir, rt.ContainerID, "eth0")) {
		t.Fatal("a refused DEL removed the hint")
	}
	if err := good.Del(rt); err != nil {
		t.Fatal(err)
	}
	e.assertClean()
}

// TestDelAfterNetnsGone: the runtime removed the netns before DEL.
func TestDelAfterNetnsGone(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			ns := testutil.NewNS(t)
			cni := e.cni("1.1.0", e.vmBridge(mode, nil))
			rt := testutil.Runtime(testutil.UniqueName("c"), ns.Path, "eth0")
			if _, err := cni.Add(rt); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			ns.Delete()
			if err := cni.Del(rt); err != nil {
				t.Fatalf("DEL after netns gone: %v", err)
			}
			if err := cni.Del(rt); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			e.assertClean()
		})
	}
}

// TestGC: GC removes the attachments not listed as valid, keeps the others
// and forwards GC to host-local.
func TestGC(t *testing.T) {
	e := newEnv(t)
	cni := e.cni("1.1.0", e.vmBridge(bridgetap.ModeTCFilter, nil))
	nsKeep, nsGone := testutil.NewNS(t), testutil.NewNS(t)
	keep := testutil.Runtime(testutil.UniqueName("keep"), nsKeep.Path, "eth0")
	stale := testutil.Runtime(testutil.UniqueName("stale"), nsGone.Path, "eth0")
	if _, err := cni.Add(keep); err != nil {
		t.Fatal(err)
	}
	staleRes, err := cni.Add(stale)
	if err != nil {
		t.Fatal(err)
	}
	if err := cni.GC(keep); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if testutil.FileExists(hint.Path(e.stateDir, stale.ContainerID, "eth0")) {
		t.Fatal("GC left the stale attachment's hint")
	}
	if _, err := link.ByName(staleRes.Interfaces[1].Name); !link.IsNotFound(err) {
		t.Fatalf("GC left the stale host veth: %v", err)
	}
	if err := cni.Check(keep); err != nil {
		t.Fatalf("CHECK of the kept attachment after GC: %v", err)
	}
	if err := cni.Del(keep); err != nil {
		t.Fatal(err)
	}
	// DEL after GC of the stale one: still fine.
	if err := cni.Del(stale); err != nil {
		t.Fatal(err)
	}
	e.assertClean()
}

// TestStatus: ready with host-local; not available (50) when the IPAM
// plugin is missing.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	if err := e.cni("1.1.0", e.vmBridge(bridgetap.ModeTCFilter, nil)).Status(); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	broken := e.vmBridge(bridgetap.ModeTCFilter, map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}})
	err := e.cni("1.1.0", broken).Status()
	testutil.AssertCode(t, err, 50)
	e.assertClean()
	_ = os.Remove(e.stateDir)
}
