package sriov_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
)

var modes = []string{sriov.ModeNetdev, sriov.ModeVFIO}

// wantSteps are ADD's side effects with every knob set, in order.
var wantSteps = map[string][]string{
	sriov.ModeNetdev: {"record", "owner", "vf-mac", "vf-vlan", "vf-spoofchk", "vf-trust", "vf-link-state", "vf-rate",
		"netdev-move", "netdev-config", "ipam", "addresses"},
	sriov.ModeVFIO: {"record", "owner", "unbind", "driver-override", "drivers-probe", "vf-mac", "vf-vlan", "vf-spoofchk",
		"vf-trust", "vf-link-state", "vf-rate", "ipam", "device-info", "hint"},
}

// TestFaultAfterEachStep fails ADD right after each of its side effects and
// checks the rollback leaves VF settings, driver, links, netns, records,
// IPAM and files exactly as before; then crashes ADD at each step (no
// rollback) and checks DEL (even steps) or GC (odd steps) restores it all.
func TestFaultAfterEachStep(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 2, false)
			t.Setenv("CNI_PATH", e.bin)
			pod := testutil.NewNS(t)
			info := filepath.Join(t.TempDir(), "devinfo.json")
			ip := &inProcess{e: e, conf: e.conf(mode, 1, allKnobs(map[string]any{
				"mtu": 1400, "runtimeConfig": map[string]any{"CNIDeviceInfoFile": info}}))}
			simBefore, hostBefore, podBefore := e.k.State(), e.snapshot(), netnsSnapshot(t, pod.Path)
			assertSame := func(when string) {
				t.Helper()
				e.k.AssertState(t, simBefore)
				e.assertSnapshot(hostBefore)
				assertSameNetns(t, pod.Path, podBefore)
				if testutil.FileExists(info) {
					t.Fatalf("%s: device-info file left", when)
				}
			}

			var steps []string
			if err := ip.add("fault", pod.Path, plugin.WithStepHook(func(s string) error { steps = append(steps, s); return nil })); err != nil {
				t.Fatalf("clean ADD: %v", err)
			}
			assertLines(t, "steps", steps, wantSteps[mode])
			if err := ip.del("fault", pod.Path); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertSame("clean ADD+DEL")

			for i, step := range steps {
				err := ip.add("fault", pod.Path, plugin.WithStepHook(failAt(step)))
				if !errors.Is(err, errInjected) {
					t.Fatalf("fault at %q: ADD returned %v", step, err)
				}
				assertSame("rollback after " + step)

				err = ip.add("fault", pod.Path, plugin.WithStepHook(failAt(step)), plugin.WithoutRollback())
				if !errors.Is(err, errInjected) {
					t.Fatalf("crash at %q: ADD returned %v", step, err)
				}
				if i%2 == 0 {
					err = ip.del("fault", pod.Path)
				} else {
					err = ip.gc()
				}
				if err != nil {
					t.Fatalf("cleanup after crash at %q: %v", step, err)
				}
				assertSame("DEL/GC after crash at " + step)
			}
			e.k.TakeWrites()
		})
	}
}

// TestAddAfterCrash: an ADD that crashed half way is cleaned up by the
// next ADD of the same attachment, which then succeeds.
func TestAddAfterCrash(t *testing.T) {
	e := newEnv(t, 1, false)
	t.Setenv("CNI_PATH", e.bin)
	pod := testutil.NewNS(t)
	ip := &inProcess{e: e, conf: e.conf(sriov.ModeVFIO, 0, allKnobs(nil))}
	simBefore := e.k.State()
	if err := ip.add("again", pod.Path, plugin.WithStepHook(failAt("vf-trust")), plugin.WithoutRollback()); !errors.Is(err, errInjected) {
		t.Fatalf("crash: %v", err)
	}
	if err := ip.add("again", pod.Path); err != nil {
		t.Fatalf("ADD after crash: %v", err)
	}
	if got := e.k.VF(0); got.Vlan != 100 || !got.Trust {
		t.Fatalf("VF after second ADD: %+v", got)
	}
	if err := ip.del("again", pod.Path); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	e.k.AssertState(t, simBefore)
}
