package sriov_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/vmnet"
)

// TestLabVMOnVF: a VM boots on a VF that vm-sriov bound to vfio-pci, the
// way a VM runtime uses the result: vmnet plans the VM from the ADD result
// and the hint (-device vfio-pci,host=<VF>, the guest's address, gateway
// and MAC on its command line), QEMU passes the VF through the lab's
// IOMMU, and the nested guest's igbvf takes the VF, gets link, takes the
// address and pings the gateway on the PF. Then DEL gives the VF back.
// Nested TCG: the guest needs minutes to boot.
func TestLabVMOnVF(t *testing.T) {
	e := newLab(t)
	vf := e.vfs[0]
	before := e.state(t)
	gw, removeAddr := e.gatewayOnPF(t)
	const id = "lab-vm"
	c := e.cni(e.conf(sriov.ModeVFIO, &vf, map[string]any{"mac": "02:00:00:00:03:00"}))
	rt := testutil.Runtime(id, testutil.NewNS(t).Path, "net1")
	res, err := c.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	plan, err := vmnet.PlanFromResult(res, id, e.stateDir)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	devices, err := vmnet.QEMUArgs(plan, vmnet.QEMUOptions{Machine: "q35"})
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=tcg", "-cpu", "max", "-m", "256",
		"-kernel", "/nested/vmlinuz", "-initrd", "/nested/initramfs.cpio.gz",
		"-append", fmt.Sprintf("console=ttyS0 quiet %s vmcni.probe=%s vmcni.halt_after=2", vmnet.GuestCmdline(plan), gw.IP),
		"-serial", "stdio"}, devices...)
	t.Logf("qemu %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "/nested/qemu", args...).CombinedOutput()
	t.Logf("nested guest (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	ip := res.IPs[0].Address.String()
	for _, want := range []string{"VMCNI-GUEST-READY ip=" + ip, "mac=02:00:00:00:03:00", "VMCNI-PROBE-OK " + gw.IP.String()} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the nested guest did not print %q", want)
		}
	}
	if err := c.Del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := removeAddr(); err != nil {
		t.Fatal(err)
	}
	e.assertState(t, before, "after the VM and DEL")
}
