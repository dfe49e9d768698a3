package sriov_test

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
)

// TestLabDelContract: DEL without ADD touches no VF, in both modes; DEL
// after the pod netns is gone finds the VF netdev where the kernel put it
// (the init netns, under the pod's name) and gives it back under its own
// name; DEL again is a no-op.
func TestLabDelContract(t *testing.T) {
	e := newLab(t)
	vf := e.vfs[1]
	before := e.state(t)
	for _, mode := range []string{sriov.ModeNetdev, sriov.ModeVFIO} {
		c := e.cni(e.conf(mode, &vf, igbKnobs(nil)))
		if err := c.Del(testutil.Runtime("lab-never-added", "/proc/self/ns/net-gone", "net1")); err != nil {
			t.Fatalf("%s: DEL without ADD: %v", mode, err)
		}
		e.assertState(t, before, mode+": DEL without ADD")
	}

	pod := testutil.NewNS(t)
	c := e.cni(e.conf(sriov.ModeNetdev, &vf, igbKnobs(map[string]any{"mtu": 1400})))
	rt := testutil.Runtime("lab-gone", pod.Path, "net1")
	if _, err := c.Add(rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	pod.Delete()
	start := time.Now()
	if err := c.Del(rt); err != nil {
		t.Fatalf("DEL after the netns is gone: %v", err)
	}
	t.Logf("DEL with the netns gone took %s (it waits for the kernel to return the netdev)", time.Since(start).Round(time.Millisecond))
	e.assertState(t, before, "DEL after the netns is gone")
	if err := c.Del(rt); err != nil {
		t.Fatalf("DEL again: %v", err)
	}
	e.assertState(t, before, "second DEL")
}

// TestLabParallel: every VF of the PF attached at once, through the
// binary, half netdev and half vfio; each VF configured as asked; then
// every attachment deleted at once and the machine as before.
func TestLabParallel(t *testing.T) {
	e := newLab(t)
	before := e.state(t)
	type att struct {
		c  *testutil.CNI
		rt *libcni.RuntimeConf
	}
	atts := make([]att, len(e.vfs))
	for i, vf := range e.vfs {
		mode := sriov.ModeNetdev
		if i%2 == 1 {
			mode = sriov.ModeVFIO
		}
		mac := fmt.Sprintf("02:00:00:00:02:%02x", i)
		atts[i] = att{
			c:  e.cni(e.conf(mode, &vf, map[string]any{"mac": mac, "vlan": 10 + i})),
			rt: testutil.Runtime(fmt.Sprintf("lab-par%d", i), testutil.NewNS(t).Path, "net1"),
		}
	}
	each := func(what string, fn func(a att) error) {
		t.Helper()
		errs := make([]error, len(atts))
		var wg sync.WaitGroup
		start := time.Now()
		for i, a := range atts {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = fn(a) }()
		}
		wg.Wait()
		t.Logf("%d %ss at once took %s", len(atts), what, time.Since(start).Round(time.Millisecond))
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s %d: %v", what, i, err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	each("ADD", func(a att) error { _, err := a.c.Add(a.rt); return err })
	for i, vf := range e.vfs {
		want := sriov.VFState{MAC: fmt.Sprintf("02:00:00:00:02:%02x", i), Vlan: 10 + i, VlanProto: 0x8100, Spoofchk: true}
		e.assertVF(vf, want)
		if wantDrv := map[bool]string{true: sriov.VFIODriver, false: "igbvf"}[i%2 == 1]; driver(vf) != wantDrv {
			t.Fatalf("VF %d bound to %q, want %q", vf.Index, driver(vf), wantDrv)
		}
	}
	each("DEL", func(a att) error { return a.c.Del(a.rt) })
	e.assertState(t, before, "after every DEL")
}

// TestLabFaultSweep: ADD fails at each of its steps, in process on the
// real kernel; the rollback must leave the VF (PF-side settings, driver,
// netdev) and the host exactly as the kernel reported them before; an ADD
// crashed at each step is cleaned up by DEL or GC; and a rollback whose
// undo step fails once keeps the record and the allocation, so that DEL
// or GC still restores everything.
func TestLabFaultSweep(t *testing.T) {
	for _, mode := range []string{sriov.ModeNetdev, sriov.ModeVFIO} {
		t.Run(mode, func(t *testing.T) {
			e := newLab(t)
			t.Setenv("CNI_PATH", e.bin)
			vf := e.vfs[6]
			pod := testutil.NewNS(t)
			conf := e.conf(mode, &vf, igbKnobs(map[string]any{"mtu": 1400}))
			args := func(extra map[string]any) []map[string]any {
				if extra == nil {
					return []map[string]any{conf}
				}
				return []map[string]any{conf, extra}
			}
			cmd := func(containerID string, extra map[string]any) *skel.CmdArgs {
				return testutil.CmdArgs("vmct-lab", containerID, pod.Path, "net1", args(extra)...)
			}
			before, podBefore := e.state(t), testutil.TakeNetnsSnapshot(t, pod.Path)
			points := testutil.FaultSweep{
				Add: func(opts ...plugin.Option) error {
					return sriov.New(append(opts, plugin.WithStdout(io.Discard))...).Add(cmd("lab-fault", nil))
				},
				Del: func() error { return sriov.New().Del(cmd("lab-fault", nil)) },
				GC: func() error {
					return sriov.New().GC(cmd("gc", map[string]any{"cni.dev/valid-attachments": []any{}}))
				},
				Same: func(t testing.TB, when string) {
					t.Helper()
					if link.Exists("net1") {
						t.Fatalf("%s: net1 in the host netns", when)
					}
					e.assertState(t, before, when)
					testutil.AssertSameNetns(t, pod.Path, podBefore)
				},
				Want:     wantLabSteps[mode],
				Crash:    true,
				FailUndo: true,
			}.Run(t)
			t.Logf("%s: %d steps", mode, len(points))
		})
	}
}

// wantLabSteps are ADD's side effects with igbKnobs, in order.
var wantLabSteps = map[string][]string{
	sriov.ModeNetdev: {"record", "owner", "vf-mac", "vf-vlan", "vf-spoofchk", "vf-trust", "vf-rate",
		"netdev-move", "netdev-config", "ipam", "addresses"},
	sriov.ModeVFIO: {"record", "owner", "unbind", "driver-override", "drivers-probe", "vf-mac", "vf-vlan", "vf-spoofchk",
		"vf-trust", "vf-rate", "ipam", "hint"},
}
