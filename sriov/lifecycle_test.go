package sriov_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// wantKnobs is VF state after ADD with allKnobs and the given admin MAC.
func wantKnobs(mac string) sriov.VFState {
	return sriov.VFState{MAC: mac, Vlan: 100, QoS: 3, VlanProto: 0x88a8, Spoofchk: false, Trust: true,
		LinkState: 1, MinTxRate: 100, MaxTxRate: 1000}
}

// knobCalls are the PF-side calls ADD makes with allKnobs, in order.
func knobCalls(pf string, vf int, mac string) []string {
	p := func(s string) string { return strings.Replace(s, "PF", pf+" vf "+string(rune('0'+vf)), 1) }
	return []string{p("mac PF " + mac), p("vlan PF 100 qos 3 proto 0x88a8"), p("spoofchk PF false"),
		p("trust PF true"), p("state PF 1"), p("rate PF min 100 max 1000")}
}

// restoreCalls are the PF-side calls DEL makes to undo knobCalls.
func restoreCalls(pf string, vf int) []string {
	p := func(s string) string { return strings.Replace(s, "PF", pf+" vf "+string(rune('0'+vf)), 1) }
	return []string{p("mac PF 00:00:00:00:00:00"), p("vlan PF 0 qos 0 proto 0x8100"), p("spoofchk PF true"),
		p("trust PF false"), p("state PF 0"), p("rate PF min 0 max 0")}
}

func assertLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// TestNetdevLifecycle: ADD, CHECK, DEL, DEL of a netdev attachment through
// libcni with every knob set; each knob applied on ADD and restored on DEL.
func TestNetdevLifecycle(t *testing.T) {
	e := newEnv(t, 4, false)
	pod := testutil.NewNS(t)
	c := e.cni(e.conf(sriov.ModeNetdev, 1, allKnobs(map[string]any{"mtu": 1400})))
	rt := testutil.Runtime("nd1", pod.Path, "net1")
	simBefore, hostBefore, podBefore := e.k.State(), e.snapshot(), testutil.TakeNetnsSnapshot(t, pod.Path)

	res, err := c.add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertLines(t, "PF calls on ADD", e.k.TakeCalls(), knobCalls(e.k.PFName, 1, "02:11:22:33:44:55"))
	if got := e.k.VF(1); !jsonEqual(got, wantKnobs("02:11:22:33:44:55")) {
		t.Fatalf("VF 1 after ADD: %+v", got)
	}
	if w := e.k.TakeWrites(); len(w) != 0 {
		t.Fatalf("netdev mode wrote to sysfs: %v", w)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].Sandbox != pod.Path ||
		res.Interfaces[0].PciID != sriovsim.VFAddr(1) || res.Interfaces[0].Mac != "02:11:22:33:44:55" || len(res.IPs) != 1 {
		t.Fatalf("result: %+v", res)
	}
	var l netlink.Link
	if err := nsDo(pod.Path, func() (err error) { l, err = link.ByName("net1"); return err }); err != nil {
		t.Fatalf("net1 not in pod: %v", err)
	}
	if l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != "02:11:22:33:44:55" || l.Attrs().Flags&1 == 0 {
		t.Fatalf("net1: mtu %d mac %s flags %v", l.Attrs().MTU, l.Attrs().HardwareAddr, l.Attrs().Flags)
	}
	hostName, _ := e.k.Netdev(sriovsim.VFAddr(1))
	if err := e.inHost(func() error {
		if link.Exists(hostName) {
			t.Errorf("VF netdev still in the host netns")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.check(rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := c.del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertLines(t, "PF calls on DEL", e.k.TakeCalls(), restoreCalls(e.k.PFName, 1))
	e.k.AssertState(t, simBefore)
	e.assertSnapshot(hostBefore)
	testutil.AssertSameNetns(t, pod.Path, podBefore)
	if err := c.del(rt); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	if calls := e.k.TakeCalls(); len(calls) != 0 {
		t.Fatalf("second DEL touched the VF: %v", calls)
	}
	e.assertSnapshot(hostBefore)
}

// TestVFIOLifecycle: vfio mode through libcni: the exact bind sequence,
// hint, result, device-info file, CHECK, and the exact restore sequence.
func TestVFIOLifecycle(t *testing.T) {
	e := newEnv(t, 4, false)
	pod := testutil.NewNS(t)
	info := filepath.Join(t.TempDir(), "devinfo", "net1.json")
	c := e.cni(e.conf(sriov.ModeVFIO, 2, allKnobs(map[string]any{
		"mac": nil, "mtu": 9000, "capabilities": map[string]bool{"CNIDeviceInfoFile": true}})))
	rt := testutil.Runtime("vfio1", pod.Path, "net1")
	rt.CapabilityArgs = map[string]any{"CNIDeviceInfoFile": info}
	addr := sriovsim.VFAddr(2)
	_, mac := e.k.Netdev(addr)
	netdevMAC := mac.String()
	simBefore, hostBefore := e.k.State(), e.snapshot()

	res, err := c.add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertLines(t, "sysfs writes on ADD", e.k.TakeWrites(), []string{
		"drivers/iavf/unbind=" + addr, "devices/" + addr + "/driver_override=vfio-pci", "drivers_probe=" + addr})
	assertLines(t, "PF calls on ADD", e.k.TakeCalls(), knobCalls(e.k.PFName, 2, netdevMAC))
	if d := e.k.Driver(addr); d != "vfio-pci" || !testutil.FileExists(e.k.Abs("dev/vfio/102")) {
		t.Fatalf("driver %q, /dev/vfio/102 exists %v", d, testutil.FileExists(e.k.Abs("dev/vfio/102")))
	}
	h, err := hint.Read(e.stateDir, "vfio1", "net1")
	if err != nil {
		t.Fatalf("hint: %v", err)
	}
	if h.Kind != hint.KindVFIO || h.VFIO.PCIAddress != addr || h.VFIO.IOMMUGroup != "102" ||
		h.VFIO.DevicePath != e.k.Abs("dev/vfio/102") || h.Guest.MAC != netdevMAC || h.Guest.MTU != 9000 || len(h.Guest.IPs) != 1 {
		t.Fatalf("hint: %+v guest %+v", h.VFIO, h.Guest)
	}
	pseudo := hint.PseudoInterfaces(res, "vfio1")
	if len(pseudo) != 1 || res.Interfaces[pseudo[0]].PciID != addr || res.Interfaces[pseudo[0]].Mac != netdevMAC {
		t.Fatalf("result interfaces: %+v", res.Interfaces)
	}
	for _, ip := range res.IPs {
		if ip.Interface == nil || *ip.Interface != pseudo[0] {
			t.Fatalf("IP %s not on the pseudo-interface", ip.Address.String())
		}
	}
	if err = hint.CheckResult(res, h); err != nil {
		t.Fatal(err)
	}
	var di hint.DeviceInfo
	data, err := os.ReadFile(info)
	if err != nil || json.Unmarshal(data, &di) != nil || di.Type != "pci" || di.PCI.PCIAddress != addr {
		t.Fatalf("device-info %s: %v", data, err)
	}
	if err := c.check(rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}

	if err := c.del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertLines(t, "sysfs writes on DEL", e.k.TakeWrites(), []string{
		"devices/" + addr + "/driver_override=", "drivers/vfio-pci/unbind=" + addr, "drivers_probe=" + addr})
	assertLines(t, "PF calls on DEL", e.k.TakeCalls(), restoreCalls(e.k.PFName, 2))
	e.k.AssertState(t, simBefore)
	e.assertSnapshot(hostBefore)
	if testutil.FileExists(info) {
		t.Fatal("device-info file left behind")
	}
	if err := c.del(rt); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	if w, calls := e.k.TakeWrites(), e.k.TakeCalls(); len(w)+len(calls) != 0 {
		t.Fatalf("second DEL touched the VF: %v %v", w, calls)
	}
}

// TestDeviceFromDeviceInfoFile: no deviceID; the VF comes from a device
// plugin's device-info file, which vm-sriov neither rewrites nor removes.
func TestDeviceFromDeviceInfoFile(t *testing.T) {
	e := newEnv(t, 2, false)
	pod := testutil.NewNS(t)
	info := filepath.Join(t.TempDir(), "dp.json")
	content := `{"type":"pci","version":"1.1.0","pci":{"pci-address":"` + sriovsim.VFAddr(1) + `","pf-pci-address":"` + sriovsim.PFAddr + `"}}`
	if err := os.WriteFile(info, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := e.conf(sriov.ModeVFIO, 0, map[string]any{"deviceID": nil, "capabilities": map[string]bool{"CNIDeviceInfoFile": true}})
	c := e.cni(plugin)
	rt := testutil.Runtime("di1", pod.Path, "net1")
	rt.CapabilityArgs = map[string]any{"CNIDeviceInfoFile": info}
	res, err := c.add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if p := hint.PseudoInterfaces(res, "di1"); len(p) != 1 || res.Interfaces[p[0]].PciID != sriovsim.VFAddr(1) {
		t.Fatalf("took the wrong VF: %+v", res.Interfaces)
	}
	if err := c.del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if data, _ := os.ReadFile(info); string(data) != content {
		t.Fatalf("device plugin's file changed: %s", data)
	}
}

// TestNonViableGroup: a VF sharing its IOMMU group with a device bound to
// another driver is refused with code 7 before any change.
func TestNonViableGroup(t *testing.T) {
	e := newEnv(t, 4, true)
	pod := testutil.NewNS(t)
	c := e.cni(e.conf(sriov.ModeVFIO, 3, allKnobs(nil)))
	simBefore, hostBefore := e.k.State(), e.snapshot()
	_, err := c.add(testutil.Runtime("nv1", pod.Path, "net1"))
	testutil.AssertCode(t, err, 7)
	if !strings.Contains(err.Error(), sriovsim.NVMeAddr) {
		t.Fatalf("error does not name the offending device: %v", err)
	}
	if w, calls := e.k.TakeWrites(), e.k.TakeCalls(); len(w)+len(calls) != 0 {
		t.Fatalf("side effects: %v %v", w, calls)
	}
	e.k.AssertState(t, simBefore)
	e.assertSnapshot(hostBefore)
}

// TestDelAfterNetnsGone: the pod netns, where ADD set the VF netdev's MTU
// to 9000, disappears before DEL, and the VF netdev returns to the host
// netns under another name and with MTU 9000 (the simulated kernel's netns
// refund), either before DEL or, asynchronously, while DEL waits for it:
// DEL succeeds, renames the netdev back, restores its MTU, the PF-side
// settings and its MAC, and releases the allocation, IPAM and the record;
// the simulated host and the host netns are exactly as before.
func TestDelAfterNetnsGone(t *testing.T) {
	const podMTU = 9000
	for _, waitRefund := range []bool{true, false} {
		t.Run(fmt.Sprintf("refund-before-del=%v", waitRefund), func(t *testing.T) {
			e := newEnv(t, 2, false)
			pod := testutil.NewNS(t)
			c := e.cni(e.conf(sriov.ModeNetdev, 0, allKnobs(map[string]any{"mtu": podMTU})))
			rt := testutil.Runtime("gone1", pod.Path, "net1")
			addr := sriovsim.VFAddr(0)
			hostName, _ := e.k.Netdev(addr)
			simBefore, hostBefore := e.k.State(), e.snapshot()
			if _, err := c.add(rt); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			e.k.TakeCalls()
			pod.Delete()
			if waitRefund {
				back := e.k.WaitNetdev(addr)
				if back == hostName {
					t.Fatalf("the VF netdev came back as %q, want another name", back)
				}
				var l netlink.Link
				if err := e.inHost(func() (err error) { l, err = link.ByName(back); return err }); err != nil {
					t.Fatal(err)
				}
				if mtu := l.Attrs().MTU; mtu != podMTU {
					t.Fatalf("the VF netdev came back with MTU %d, want the pod's %d", mtu, podMTU)
				}
			}
			if err := c.del(rt); err != nil {
				t.Fatalf("DEL after netns gone: %v", err)
			}
			assertLines(t, "PF calls on DEL", e.k.TakeCalls(), restoreCalls(e.k.PFName, 0))
			if now := e.k.WaitNetdev(addr); now != hostName {
				t.Fatalf("VF netdev is %q after DEL, want %q", now, hostName)
			}
			e.k.AssertState(t, simBefore)
			e.assertSnapshot(hostBefore)
			if f := files(t, e.stateDir); len(f) != 0 {
				t.Fatalf("state left: %v", f)
			}
			if f := files(t, e.ipamDir); len(f) > 0 {
				for _, p := range f {
					if strings.Contains(filepath.Base(p), ".") && !strings.HasPrefix(filepath.Base(p), "last_reserved") {
						t.Fatalf("IPAM lease left: %v", f)
					}
				}
			}
			if err := c.del(rt); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			e.assertSnapshot(hostBefore)
		})
	}
}

// TestDelWithoutAdd: DEL of an attachment that never existed, with a
// deviceID in the config, touches no VF.
func TestDelWithoutAdd(t *testing.T) {
	for _, mode := range []string{sriov.ModeNetdev, sriov.ModeVFIO} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 2, false)
			pod := testutil.NewNS(t)
			c := e.cni(e.conf(mode, 0, allKnobs(nil)))
			simBefore, hostBefore := e.k.State(), e.snapshot()
			if err := c.del(testutil.Runtime("never", pod.Path, "net1")); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if w, calls := e.k.TakeWrites(), e.k.TakeCalls(); len(w)+len(calls) != 0 {
				t.Fatalf("side effects: %v %v", w, calls)
			}
			e.k.AssertState(t, simBefore)
			e.assertSnapshot(hostBefore)
		})
	}
}

// TestStatus: 50 without sys/bus/pci, or without dev/vfio in vfio mode.
func TestStatus(t *testing.T) {
	e := newEnv(t, 1, false)
	if err := e.cni(e.conf(sriov.ModeVFIO, 0, nil)).status(); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if err := os.RemoveAll(e.k.Abs("dev/vfio")); err != nil {
		t.Fatal(err)
	}
	testutil.AssertCode(t, e.cni(e.conf(sriov.ModeVFIO, 0, nil)).status(), 50)
	if err := e.cni(e.conf(sriov.ModeNetdev, 0, nil)).status(); err != nil {
		t.Fatalf("netdev STATUS without /dev/vfio: %v", err)
	}
	empty := t.TempDir()
	testutil.AssertCode(t, e.cni(e.conf(sriov.ModeNetdev, 0, map[string]any{"sysfsRoot": empty})).status(), 50)
}
