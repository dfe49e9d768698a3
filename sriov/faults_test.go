package sriov_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

var modes = []string{sriov.ModeNetdev, sriov.ModeVFIO}

// wantSteps are ADD's side effects with every knob set, in order.
var wantSteps = map[string][]string{
	sriov.ModeNetdev: {"record", "owner", "vf-mac", "vf-vlan", "vf-spoofchk", "vf-trust", "vf-link-state", "vf-rate",
		"netdev-move", "netdev-config", "ipam", "addresses"},
	sriov.ModeVFIO: {"record", "owner", "unbind", "driver-override", "drivers-probe", "vf-mac", "vf-vlan", "vf-spoofchk",
		"vf-trust", "vf-link-state", "vf-rate", "ipam", "device-info", "hint"},
}

// TestFaultAfterEachStep fails ADD at each of its fault points and checks
// the rollback leaves VF settings, driver, links, netns, records, IPAM and
// files exactly as before; then crashes ADD there (no rollback) and checks
// DEL or GC restores it all.
func TestFaultAfterEachStep(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 2, false)
			t.Setenv("CNI_PATH", e.bin)
			pod := testutil.NewNS(t)
			info := filepath.Join(t.TempDir(), "devinfo.json")
			ip := &inProcess{e: e, conf: e.conf(mode, 1, allKnobs(map[string]any{
				"mtu": 1400, "runtimeConfig": map[string]any{"CNIDeviceInfoFile": info}}))}
			simBefore, hostBefore, podBefore := e.k.State(), e.snapshot(), testutil.TakeNetnsSnapshot(t, pod.Path)
			testutil.FaultSweep{
				Add: func(opts ...plugin.Option) error { return ip.add("fault", pod.Path, opts...) },
				Del: func() error { return ip.del("fault", pod.Path) },
				GC:  ip.gc,
				Same: func(t testing.TB, when string) {
					t.Helper()
					e.k.AssertState(t, simBefore)
					e.assertSnapshot(hostBefore)
					testutil.AssertSameNetns(t, pod.Path, podBefore)
					if testutil.FileExists(info) {
						t.Fatalf("%s: device-info file left", when)
					}
				},
				Want:     wantSteps[mode],
				Crash:    true,
				FailUndo: true,
			}.Run(t)
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
	if err := ip.add("again", pod.Path, plugin.WithStepHook(failAt("vf-trust")), plugin.WithoutRollback()); !errors.Is(err, testutil.ErrInjected) {
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

// TestDirtyVFStaysAllocated: an ADD fails and its rollback cannot restore
// the VF (the trust knob's undo fails): the VF stays allocated to the
// failed attachment, so the next pod's ADD is refused (code 11, try
// again) instead of getting a VF with trust on; the failed attachment's
// DEL restores the VF and frees it. sriov-cni's "VF not reset after a
// failed ADD" cannot happen.
func TestDirtyVFStaysAllocated(t *testing.T) {
	e := newEnv(t, 1, false)
	t.Setenv("CNI_PATH", e.bin)
	pod, next := testutil.NewNS(t), testutil.NewNS(t)
	ip := &inProcess{e: e, conf: e.conf(sriov.ModeVFIO, 0, allKnobs(nil))}
	simBefore := e.k.State()
	failTrustRestore := plugin.WithStepHook(func(p string) error {
		if p == "hint" || p == plugin.UndoPoint("vf-trust") {
			return testutil.ErrInjected
		}
		return nil
	})
	if err := ip.add("dirty", pod.Path, failTrustRestore); !errors.Is(err, testutil.ErrInjected) {
		t.Fatalf("ADD: %v", err)
	}
	if !e.k.VF(0).Trust {
		t.Fatal("the injected undo failure did not leave trust on")
	}
	owner, err := sriov.ReadOwner(e.stateDir, sriovsim.VFAddr(0))
	if err != nil || owner == nil || owner.ContainerID != "dirty" {
		t.Fatalf("VF owner after the failed rollback: %+v, %v", owner, err)
	}
	testutil.AssertCode(t, ip.add("next", next.Path), 11)
	if err := ip.del("dirty", pod.Path); err != nil {
		t.Fatalf("DEL of the failed attachment: %v", err)
	}
	e.k.AssertState(t, simBefore)
	if err := ip.add("next", next.Path); err != nil {
		t.Fatalf("ADD once the VF is clean: %v", err)
	}
	if err := ip.del("next", next.Path); err != nil {
		t.Fatal(err)
	}
	e.k.AssertState(t, simBefore)
}

// TestDelWhileVMHoldsGroup: DEL in vfio mode while a process (the VMM)
// still has /dev/vfio/<group> open is code 11 and changes nothing, the
// hint and the address lease included (the kernel would block unbinding
// vfio-pci); once the VMM is gone DEL puts the VF back.
func TestDelWhileVMHoldsGroup(t *testing.T) {
	e := newEnv(t, 1, false)
	t.Setenv("CNI_PATH", e.bin)
	pod := testutil.NewNS(t)
	ip := &inProcess{e: e, conf: e.conf(sriov.ModeVFIO, 0, nil)}
	simBefore := e.k.State()
	if err := ip.add("vm", pod.Path); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	h, err := hint.Read(e.stateDir, "vm", "net1")
	if err != nil {
		t.Fatal(err)
	}
	vmm := exec.Command("sh", "-c", `exec 3<"$1"; exec sleep 60`, "vmm", h.VFIO.DevicePath)
	if err = vmm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vmm.Process.Kill(); _ = vmm.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", vmm.Process.Pid)); target == h.VFIO.DevicePath {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in VMM never opened the group")
		}
	}
	held, files := e.k.State(), e.snapshot()
	testutil.AssertCode(t, ip.del("vm", pod.Path), 11)
	e.k.AssertState(t, held)
	e.assertSnapshot(files) // hint, record, lease: all still there
	_ = vmm.Process.Kill()
	_ = vmm.Wait()
	if err = ip.del("vm", pod.Path); err != nil {
		t.Fatalf("DEL after the VMM exited: %v", err)
	}
	e.k.AssertState(t, simBefore)
}

// TestTornRecord: the attachment's record is empty or truncated (a crash
// while writing it, on a file system that lost the data); DEL restores
// the VF from its allocation and removes the torn record, and the VF can
// be allocated again.
func TestTornRecord(t *testing.T) {
	for name, torn := range map[string][]byte{"empty": nil, "truncated": []byte(`{"plugin":"vm-sriov","netw`)} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1, false)
			t.Setenv("CNI_PATH", e.bin)
			pod := testutil.NewNS(t)
			ip := &inProcess{e: e, conf: e.conf(sriov.ModeVFIO, 0, allKnobs(nil))}
			simBefore, hostBefore := e.k.State(), e.snapshot()
			if err := ip.add("torn", pod.Path); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			record := filepath.Join(e.stateDir, "torn", "net1", "record.json")
			if err := os.WriteFile(record, torn, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := ip.del("torn", pod.Path); err != nil {
				t.Fatalf("DEL with a torn record: %v", err)
			}
			e.k.AssertState(t, simBefore)
			e.assertSnapshot(hostBefore)
		})
	}
}
