package sriov_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov"
)

// TestLabNetdevLifecycle: ADD, CHECK, DEL, DEL of a VF netdev with every
// knob igb implements, read back from the kernel after ADD and after DEL.
func TestLabNetdevLifecycle(t *testing.T) {
	e := newLab(t)
	vf := e.vfs[1]
	pod := testutil.NewNS(t)
	c := e.cni(e.conf(sriov.ModeNetdev, &vf, igbKnobs(map[string]any{"mtu": 1400})))
	rt := testutil.Runtime("lab-nd", pod.Path, "net1")
	before, podBefore := e.state(t), testutil.TakeNetnsSnapshot(t, pod.Path)

	res, err := c.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	e.assertVF(vf, wantIgbKnobs)
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].PciID != vf.PCI ||
		res.Interfaces[0].Mac != "02:11:22:33:44:55" || len(res.IPs) != 1 {
		t.Fatalf("result: %+v", res)
	}
	var l netlink.Link
	if err := nsDo(pod.Path, func() (err error) { l, err = link.ByName("net1"); return err }); err != nil {
		t.Fatalf("net1 not in the pod: %v", err)
	}
	if l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != "02:11:22:33:44:55" || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("net1: mtu %d mac %s flags %v", l.Attrs().MTU, l.Attrs().HardwareAddr, l.Attrs().Flags)
	}
	if link.Exists(vf.Netdev) {
		t.Fatalf("%s still in the host netns", vf.Netdev)
	}
	t.Logf("net1 has carrier %s after ADD", waitCarrier(t, pod.Path, "net1", 30*time.Second).Round(time.Millisecond))
	if err := c.Check(rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := c.Del(rt); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
		e.assertState(t, before, fmt.Sprintf("after DEL %d", i+1))
		testutil.AssertSameNetns(t, pod.Path, podBefore)
	}
	e.assertOwnsMAC(vf)
}

// vfioGroupStatus is VFIO_GROUP_GET_STATUS (_IO(';', 100 + 3)) and its
// viable flag, from linux/vfio.h.
const (
	vfioGroupGetStatus  = 0x3b67
	vfioGroupFlagViable = 1
)

// openGroup opens /dev/vfio/<group> as a VMM does and returns the file
// and whether the kernel calls the group viable (every device in it bound
// to vfio-pci or to nothing).
func openGroup(t *testing.T, path string) (*os.File, bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	status := struct{ argsz, flags uint32 }{argsz: 8}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), vfioGroupGetStatus, uintptr(unsafe.Pointer(&status))); errno != 0 {
		t.Fatalf("VFIO_GROUP_GET_STATUS %s: %v", path, errno)
	}
	return f, status.flags&vfioGroupFlagViable != 0
}

// TestLabVFIOLifecycle: ADD binds the VF to vfio-pci with the knobs set
// and hints the group; the kernel calls the group viable. While a process
// holds the group open (a VMM), DEL changes nothing and asks to retry
// (code 11); once it is closed, DEL gives the VF back to igbvf under its
// old netdev name, and a second DEL is a no-op.
func TestLabVFIOLifecycle(t *testing.T) {
	e := newLab(t)
	vf := e.vfs[2]
	c := e.cni(e.conf(sriov.ModeVFIO, &vf, igbKnobs(nil)))
	rt := testutil.Runtime("lab-vfio", testutil.NewNS(t).Path, "net1")
	before := e.state(t)

	res, err := c.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if d := driver(vf); d != sriov.VFIODriver {
		t.Fatalf("VF bound to %q after ADD", d)
	}
	e.assertVF(vf, wantIgbKnobs)
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != vf.PCI || res.Interfaces[0].PciID != vf.PCI {
		t.Fatalf("result: %+v", res)
	}
	h, err := hint.Read(e.stateDir, "lab-vfio", "net1")
	if err != nil {
		t.Fatalf("hint: %v", err)
	}
	group := "/dev/vfio/" + vf.Group
	if h.Kind != hint.KindVFIO || h.VFIO == nil || h.VFIO.PCIAddress != vf.PCI || h.VFIO.IOMMUGroup != vf.Group || h.VFIO.DevicePath != group {
		t.Fatalf("hint: %+v", h)
	}
	f, viable := openGroup(t, group)
	if !viable {
		t.Fatalf("%s: the kernel says the group is not viable", group)
	}
	busy := e.state(t)
	err = c.Del(rt)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != 11 || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("DEL with the group open: %v, want code 11", err)
	}
	e.assertState(t, busy, "DEL refused while the group is open")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Del(rt); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
		e.assertState(t, before, fmt.Sprintf("after DEL %d", i+1))
	}
	e.assertOwnsMAC(vf)
}

// TestLabRefusedKnobs: for each knob igb refuses, ADD fails with code 7
// naming the PF, its driver, the config keys and the kernel's reason, and
// the VF is left exactly as before (driver, netdev,
// PF-side settings), in both modes.
func TestLabRefusedKnobs(t *testing.T) {
	refused := []struct {
		name  string
		knobs map[string]any
		why   string
	}{
		{"link_state", map[string]any{"link_state": "enable"}, `refuses link_state for VF 3 (` + "%s" + `): operation not supported`},
		{"min_tx_rate", map[string]any{"min_tx_rate": 100, "max_tx_rate": 500}, "refuses min_tx_rate, max_tx_rate for VF 3 (%s): invalid argument"},
		{"max_tx_rate above the link speed", map[string]any{"max_tx_rate": 2000}, "refuses min_tx_rate, max_tx_rate for VF 3 (%s): invalid argument"},
		{"802.1ad", map[string]any{"vlan": 100, "vlanProto": "802.1ad"}, "refuses vlan, vlanQoS, vlanProto for VF 3 (%s): protocol not supported"},
	}
	for _, mode := range []string{sriov.ModeNetdev, sriov.ModeVFIO} {
		for _, r := range refused {
			t.Run(mode+"/"+r.name, func(t *testing.T) {
				e := newLab(t)
				vf := e.vfs[3]
				pod := testutil.NewNS(t)
				before := e.state(t)
				c := e.cni(e.conf(mode, &vf, igbKnobs(r.knobs)))
				rt := testutil.Runtime("lab-refused", pod.Path, "net1")
				_, err := c.Add(rt)
				why := fmt.Sprintf(`PF %q (driver "igb") `+r.why, e.pf, vf.PCI)
				var cniErr *types.Error
				if !errors.As(err, &cniErr) || cniErr.Code != 7 || !strings.Contains(err.Error(), why) {
					t.Fatalf("ADD: %v, want code 7 with %q", err, why)
				}
				t.Logf("ADD refused: %v", err)
				e.assertState(t, before, "after the refused ADD")
				if err := c.Del(rt); err != nil {
					t.Fatalf("DEL: %v", err)
				}
				e.assertState(t, before, "after DEL")
			})
		}
	}
}

// ping runs busybox ping in the netns at nsPath.
func ping(t *testing.T, nsPath, dst string) error {
	t.Helper()
	var out []byte
	var err error
	if nerr := nsDo(nsPath, func() error {
		out, err = exec.Command("ping", "-c", "3", "-W", "2", dst).CombinedOutput()
		return nil
	}); nerr != nil {
		return nerr
	}
	if err != nil {
		return fmt.Errorf("ping %s: %w\n%s", dst, err, out)
	}
	return nil
}

// TestLabDataPath: two pods on two VFs (netdev mode) ping each other, and
// a pod reaches an address on the PF in the host netns: frames cross the
// 82576's internal switch (QEMU's igb emulation of it).
func TestLabDataPath(t *testing.T) {
	e := newLab(t)
	before := e.state(t)
	pfAddr, removeAddr := e.gatewayOnPF(t)

	type pod struct {
		ns *testutil.NS
		c  *testutil.CNI
		rt *libcni.RuntimeConf
		ip string
	}
	var pods []pod
	for i, vf := range []labVF{e.vfs[4], e.vfs[5]} {
		p := pod{ns: testutil.NewNS(t)}
		mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
		p.c = e.cni(e.conf(sriov.ModeNetdev, &vf, map[string]any{"mac": mac}))
		p.rt = testutil.Runtime(fmt.Sprintf("lab-dp%d", i), p.ns.Path, "net1")
		res, err := p.c.Add(p.rt)
		if err != nil {
			t.Fatalf("ADD pod %d: %v", i, err)
		}
		p.ip = res.IPs[0].Address.IP.String()
		t.Cleanup(func() { _ = p.c.Del(p.rt) })
		t.Logf("pod %d on VF %d (%s): %s %s, carrier after %s", i, vf.Index, vf.PCI, mac, p.ip,
			waitCarrier(t, p.ns.Path, "net1", 30*time.Second).Round(time.Millisecond))
		pods = append(pods, p)
	}
	if err := ping(t, pods[0].ns.Path, pods[1].ip); err != nil {
		t.Errorf("pod 0 to pod 1: %v", err)
	}
	if err := ping(t, pods[1].ns.Path, pods[0].ip); err != nil {
		t.Errorf("pod 1 to pod 0: %v", err)
	}
	if err := ping(t, pods[0].ns.Path, pfAddr.IP.String()); err != nil {
		t.Errorf("pod 0 to the PF's %s: %v", pfAddr.IP, err)
	}
	for i, p := range pods {
		if err := p.c.Del(p.rt); err != nil {
			t.Fatalf("DEL pod %d: %v", i, err)
		}
	}
	if err := removeAddr(); err != nil {
		t.Fatal(err)
	}
	e.assertState(t, before, "after both DELs")
}
