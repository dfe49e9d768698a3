package sriov_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/k8snetworkplumbingwg/sriovnet"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov"
)

// TestLabMultusDevice: the VF comes the way Multus hands it over from the
// SR-IOV device plugin, never from the config: as runtimeConfig.deviceID
// (capability "deviceID") in vfio mode, and as the device plugin's NPWG
// device-info file (capability "CNIDeviceInfoFile") in netdev mode, which
// vm-sriov leaves as it found it.
func TestLabMultusDevice(t *testing.T) {
	e := newLab(t)
	before := e.state(t)

	vf := e.vfs[2]
	c := e.cni(e.conf(sriov.ModeVFIO, nil, map[string]any{"capabilities": map[string]bool{"deviceID": true}}))
	rt := testutil.Runtime("lab-multus-id", testutil.NewNS(t).Path, "net1")
	rt.CapabilityArgs = map[string]any{"deviceID": vf.PCI}
	res, err := c.Add(rt)
	if err != nil {
		t.Fatalf("ADD with runtimeConfig.deviceID: %v", err)
	}
	if p := hint.PseudoInterfaces(res, "lab-multus-id"); len(p) != 1 || res.Interfaces[p[0]].PciID != vf.PCI || driver(vf) != sriov.VFIODriver {
		t.Fatalf("took the wrong VF or left its driver: %+v, driver %q", res.Interfaces, driver(vf))
	}
	if err := c.Del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	e.assertState(t, before, "after the deviceID attachment")

	vf = e.vfs[3]
	info := filepath.Join(t.TempDir(), "device-plugin.json")
	content := `{"type":"pci","version":"1.1.0","pci":{"pci-address":"` + vf.PCI + `","pf-pci-address":"` + os.Getenv("VMCNI_LAB_PF_PCI") + `"}}`
	if err := os.WriteFile(info, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c = e.cni(e.conf(sriov.ModeNetdev, nil, map[string]any{"capabilities": map[string]bool{"CNIDeviceInfoFile": true}}))
	rt = testutil.Runtime("lab-multus-info", testutil.NewNS(t).Path, "net1")
	rt.CapabilityArgs = map[string]any{"CNIDeviceInfoFile": info}
	if res, err = c.Add(rt); err != nil {
		t.Fatalf("ADD with a device-info file: %v", err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].PciID != vf.PCI {
		t.Fatalf("took the wrong VF: %+v", res.Interfaces)
	}
	if err := c.Del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if data, _ := os.ReadFile(info); string(data) != content {
		t.Fatalf("the device plugin's file changed: %s", data)
	}
	e.assertState(t, before, "after the device-info attachment")
}

// TestLabConformance runs the conformance suite (the vmcni-conformance
// command, as a third party would) against vm-sriov on the real VFs, in
// vfio and netdev mode, with a pool of VFs handed out as Multus does and
// the VFs' drivers compared before and after every check.
func TestLabConformance(t *testing.T) {
	for _, mode := range []string{sriov.ModeVFIO, sriov.ModeNetdev} {
		t.Run(mode, func(t *testing.T) {
			e := newLab(t)
			before := e.state(t)
			dir := t.TempDir()
			conf := e.conf(mode, nil, map[string]any{"capabilities": map[string]bool{"deviceID": true}})
			list := writeLabJSON(t, dir, "net.conflist", map[string]any{"cniVersion": "1.1.0", "name": "vmct-lab-conf", "plugins": []any{conf}})
			var pool []map[string]any
			for _, vf := range e.vfs {
				pool = append(pool, map[string]any{"deviceID": vf.PCI})
			}
			poolFile := writeLabJSON(t, dir, "devices.json", pool)
			args := []string{"-bin", e.bin, "-conflist", list, "-capability-args-pool", poolFile,
				"-ifname", "net1", "-parallel", "4", "-watch", e.stateDir, "-watch", e.ipamDir,
				"-state-cmd", "ls -1 /sys/bus/pci/drivers/igbvf", "-state-cmd", "ls -1 /sys/bus/pci/drivers/vfio-pci"}
			if mode == sriov.ModeVFIO {
				args = append(args, "-hint-file", "-state-cmd", "ls -1 /dev/vfio")
			}
			cmd := exec.Command(filepath.Join(e.bin, "vmcni-conformance"), args...)
			out, err := cmd.CombinedOutput()
			t.Logf("vmcni-conformance %s:\n%s", mode, out)
			if err != nil {
				t.Fatalf("conformance: %v", err)
			}
			e.assertState(t, before, "after the conformance suite")
		})
	}
}

func writeLabJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLabLookupsMatchSriovnet: for every VF, vm-sriov's own sysfs lookups
// (PF, PF netdev, VF index; they honour sysfsRoot) give what
// k8snetworkplumbingwg/sriovnet reads from the kernel's /sys.
func TestLabLookupsMatchSriovnet(t *testing.T) {
	e := newLab(t)
	for _, vf := range e.vfs {
		pf, pfNetdev, index, err := sriov.LookupPF("/", vf.PCI)
		if err != nil {
			t.Fatalf("vm-sriov lookup of %s: %v", vf.PCI, err)
		}
		snPF, err := sriovnet.GetPfPciFromVfPci(vf.PCI)
		if err != nil {
			t.Fatal(err)
		}
		snIndex, err := sriovnet.GetVfIndexByPciAddress(vf.PCI)
		if err != nil {
			t.Fatal(err)
		}
		snNetdevs, err := sriovnet.GetNetDevicesFromPci(snPF)
		if err != nil || len(snNetdevs) == 0 {
			t.Fatalf("sriovnet netdevs of %s: %v %v", snPF, snNetdevs, err)
		}
		if pf != snPF || index != snIndex || pfNetdev != snNetdevs[0] || index != vf.Index {
			t.Fatalf("VF %s: vm-sriov says PF %s (%s) index %d; sriovnet says PF %s (%s) index %d",
				vf.PCI, pf, pfNetdev, index, snPF, snNetdevs[0], snIndex)
		}
	}
}
