package conformance_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/testutil"
)

// TestMultusDelegates runs the real Multus thin plugin (v4.1.0, delegates
// mode, no kubeconfig) with two vmcni delegates: vm-bridge on eth0 (the
// result Multus returns) and vm-vhostuser (backend none) on net1. The
// runtime's MAC capability reaches vm-bridge through Multus; both hint
// files appear; DEL leaves the host as it was.
func TestMultusDelegates(t *testing.T) {
	e := newEnv(t)
	binDir := t.TempDir()
	for _, dir := range []string{e.bin} {
		entries, _ := os.ReadDir(dir)
		for _, ent := range entries {
			_ = os.Symlink(filepath.Join(dir, ent.Name()), filepath.Join(binDir, ent.Name()))
		}
	}
	if err := os.Symlink(testutil.Multus(t), filepath.Join(binDir, "multus")); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	vmBridge := e.vmBridge("tcfilter")
	vmBridge["capabilities"] = map[string]bool{"mac": true}
	delegate := func(name string, plugin map[string]any) map[string]any {
		return map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []map[string]any{plugin}}
	}
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "vmct-multus", "type": "multus", "cniDir": cacheDir,
		"capabilities": map[string]bool{"mac": true},
		"delegates": []map[string]any{
			delegate("vmct-mvm", vmBridge),
			delegate("vmct-mvhu", map[string]any{"type": "vm-vhostuser", "backend": "none",
				"socketDir": e.sockDir, "stateDir": e.stateDir}),
		},
	}
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "vmct-multus", "plugins": []map[string]any{conf}})
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
