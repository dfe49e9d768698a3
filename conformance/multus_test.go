package conformance_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// multusNetwork is a conflist running the real Multus thin plugin (v4.1.0,
// delegates mode, no kubeconfig) with delegates, each a one-plugin
// conflist, and the capabilities Multus itself accepts from the runtime.
// binDir holds Multus and the vmcni and reference plugins.
func multusNetwork(t *testing.T, e *env, caps map[string]bool, delegates ...map[string]any) (binDir string, conflist []byte) {
	t.Helper()
	binDir = t.TempDir()
	entries, _ := os.ReadDir(e.bin)
	for _, ent := range entries {
		_ = os.Symlink(filepath.Join(e.bin, ent.Name()), filepath.Join(binDir, ent.Name()))
	}
	if err := os.Symlink(testutil.Multus(t), filepath.Join(binDir, "multus")); err != nil {
		t.Fatal(err)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "vmct-multus", "type": "multus", "cniDir": t.TempDir(),
		"capabilities": caps, "delegates": delegates,
	}
	conflist, _ = json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "vmct-multus", "plugins": []map[string]any{conf}})
	return binDir, conflist
}

// delegate is a Multus delegate: a one-plugin conflist.
func delegate(name string, plugin map[string]any) map[string]any {
	return map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []map[string]any{plugin}}
}

// TestMultusDelegates: vm-bridge on eth0 (the result Multus returns) and
// vm-vhostuser (backend none) on net1. The runtime's MAC capability reaches
// vm-bridge through Multus; both hint files appear; DEL leaves the host as
// it was.
func TestMultusDelegates(t *testing.T) {
	e := newEnv(t)
	vmBridge := e.vmBridge("tcfilter")
	vmBridge["capabilities"] = map[string]bool{"mac": true}
	binDir, data := multusNetwork(t, e, map[string]bool{"mac": true},
		delegate("vmct-mvm", vmBridge),
		delegate("vmct-mvhu", map[string]any{"type": "vm-vhostuser", "backend": "none",
			"socketDir": e.sockDir, "stateDir": e.stateDir}))
	cni := testutil.NewCNI(t, binDir, data)
	before := testutil.TakeSnapshot(t, []string{e.stateDir, e.ipamDir, e.sockDir}, e.bridge)
	ns := testutil.NewNS(t)
	rt := testutil.Runtime("multus1", ns.Path, "eth0")
	const mac = "02:11:22:33:44:55"
	rt.CapabilityArgs = map[string]any{"mac": mac}
	res, err := cni.Add(rt)
	if err != nil {
		t.Fatalf("ADD through Multus: %v", err)
	}
	if len(hint.PseudoInterfaces(res, "multus1")) != 1 {
		t.Fatalf("Multus returned no vmcni pseudo-interface: %+v", res.Interfaces)
	}
	h, err := hint.Read(e.stateDir, "multus1", "eth0")
	if err != nil || h.Guest.MAC != mac {
		t.Fatalf("vm-bridge hint (MAC through Multus): %+v %v", h, err)
	}
	if err := hint.CheckResult(res, h); err != nil {
		t.Fatal(err)
	}
	hv, err := hint.Read(e.stateDir, "multus1", "net1")
	if err != nil || hv.Kind != hint.KindVhostUser {
		t.Fatalf("vm-vhostuser hint on net1: %+v %v", hv, err)
	}
	if err := cni.Del(rt); err != nil {
		t.Fatalf("DEL through Multus: %v", err)
	}
	testutil.AssertSameHost(t, before, []string{e.stateDir, e.ipamDir, e.sockDir}, e.bridge)
}

// multusDevInfoDir is where Multus puts the NPWG device-info files it asks
// delegates to write (nadutils.GetCNIDeviceInfoPath).
const multusDevInfoDir = "/var/run/k8s.cni.cncf.io/devinfo/cni"

// TestMultusDeviceID: the SR-IOV path of a Kubernetes pod, without
// Kubernetes. The runtime hands Multus a deviceID (in a cluster it comes
// from the device plugin's allocation); Multus passes it to the vm-sriov
// delegate (vfio mode, simulated PCI tree) with the CNIDeviceInfoFile path
// it derives from the delegate name, container ID and ifname, and reads
// that file back after ADD. vm-sriov binds the VF to vfio-pci and writes
// the NPWG device-info file there and its hint (Multus returns only the
// first delegate's result). DEL leaves the host, the simulated host and
// the device-info directory as they were.
func TestMultusDeviceID(t *testing.T) {
	e := newEnv(t)
	k := sriovsim.Start(t, sriovsim.Options{VFs: 2})
	if _, err := os.Stat(multusDevInfoDir); os.IsNotExist(err) {
		t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(filepath.Dir(multusDevInfoDir))) })
	}
	caps := map[string]bool{"deviceID": true, "CNIDeviceInfoFile": true}
	binDir, data := multusNetwork(t, e, map[string]bool{"deviceID": true},
		delegate("vmct-mvm", e.vmBridge("tcfilter")),
		delegate("vmct-msriov", map[string]any{"type": sriovsim.PluginType, "mode": "vfio", "sysfsRoot": k.Root,
			"stateDir": e.stateDir, "bindTimeout": "3s", "capabilities": caps}))
	cni := testutil.NewCNI(t, binDir, data)
	dirs := []string{e.stateDir, e.ipamDir, multusDevInfoDir}
	before, simBefore := testutil.TakeSnapshot(t, dirs, e.bridge), k.State()
	ns := testutil.NewNS(t)
	rt := testutil.Runtime("multus2", ns.Path, "eth0")
	vf := sriovsim.VFAddr(1)
	rt.CapabilityArgs = map[string]any{"deviceID": vf}
	if _, err := cni.Add(rt); err != nil {
		t.Fatalf("ADD through Multus: %v", err)
	}
	if d := k.Driver(vf); d != sriovsim.VFIODriver {
		t.Fatalf("VF %s is bound to %q, want %s", vf, d, sriovsim.VFIODriver)
	}
	h, err := hint.Read(e.stateDir, "multus2", "net1")
	if err != nil || h.Kind != hint.KindVFIO || h.VFIO.PCIAddress != vf {
		t.Fatalf("vm-sriov hint on net1: %+v %v", h, err)
	}
	info := filepath.Join(multusDevInfoDir, "vmct-msriov-multus2_net1")
	raw, err := os.ReadFile(info)
	if err != nil {
		t.Fatalf("NPWG device-info file at the path Multus gave: %v", err)
	}
	var di hint.DeviceInfo
	if err := json.Unmarshal(raw, &di); err != nil || di.Type != "pci" || di.PCI == nil || di.PCI.PCIAddress != vf {
		t.Fatalf("device-info %s: %s (%v)", info, raw, err)
	}
	if err := cni.Check(rt); err != nil {
		t.Fatalf("CHECK through Multus: %v", err)
	}
	if err := cni.Del(rt); err != nil {
		t.Fatalf("DEL through Multus: %v", err)
	}
	testutil.AssertSameHost(t, before, dirs, e.bridge)
	k.AssertState(t, simBefore)
}
