package bridgetap_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
)

// testEnv is one test's private world: a host bridge name, a subnet, a
// state dir and a host-local data dir, and a snapshot of the host.
type testEnv struct {
	t        *testing.T
	bin      string
	bridge   string
	subnet   string
	stateDir string
	ipamDir  string
	before   testutil.Snapshot
}

// subnets hands each test its own 10.x.y.0/24.
var subnets = testutil.NewSubnets(200)

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	e := &testEnv{
		t: t, bin: testutil.Binaries(t), bridge: testutil.UniqueName("vmctbr"),
		subnet: subnets.Next(), stateDir: filepath.Join(dir, "state"), ipamDir: filepath.Join(dir, "ipam"),
	}
	e.before = testutil.TakeSnapshot(t, e.dirs())
	t.Cleanup(func() { _ = link.DeleteByName(e.bridge) })
	return e
}

func (e *testEnv) dirs() []string { return []string{e.stateDir, e.ipamDir} }

// assertClean checks the host is as before (the shared host bridge aside:
// like the reference bridge plugin, vm-bridge keeps it).
func (e *testEnv) assertClean() {
	e.t.Helper()
	testutil.AssertSameHost(e.t, e.before, e.dirs(), e.bridge)
}

// ipam returns a host-local IPAM section for the env's subnet.
func (e *testEnv) ipam(extraRanges ...string) map[string]any {
	ranges := [][]map[string]string{{{"subnet": e.subnet}}}
	for _, r := range extraRanges {
		ranges = append(ranges, []map[string]string{{"subnet": r}})
	}
	return map[string]any{
		"type": "host-local", "dataDir": e.ipamDir, "ranges": ranges,
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
}

// vmBridge returns a standalone vm-bridge plugin config.
func (e *testEnv) vmBridge(mode string, extra map[string]any) map[string]any {
	c := map[string]any{
		"type": "vm-bridge", "mode": mode, "bridge": e.bridge, "isGateway": true,
		"stateDir": e.stateDir, "ipam": e.ipam(),
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// chainedVMBridge returns a vm-bridge config for use after another plugin.
func (e *testEnv) chainedVMBridge(mode string) map[string]any {
	return map[string]any{"type": "vm-bridge", "mode": mode, "stateDir": e.stateDir}
}

// refBridge is the reference bridge plugin on the env's bridge.
func (e *testEnv) refBridge() map[string]any {
	return map[string]any{"type": "bridge", "bridge": e.bridge, "isGateway": true, "ipam": e.ipam()}
}

// refPtp is the reference ptp plugin.
func (e *testEnv) refPtp() map[string]any {
	return map[string]any{"type": "ptp", "ipam": e.ipam()}
}

func conflist(version string, plugins ...map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{
		"cniVersion": version, "name": "vmct-" + strings.ReplaceAll(version, ".", ""), "plugins": plugins,
	})
	return data
}

func (e *testEnv) cni(version string, plugins ...map[string]any) *testutil.CNI {
	return testutil.NewCNI(e.t, e.bin, conflist(version, plugins...))
}

// inNS runs fn inside the namespace at path.
func inNS(t testing.TB, path string, fn func() error) {
	t.Helper()
	if err := nsDo(path, fn); err != nil {
		t.Fatal(err)
	}
}

func linkIn(t *testing.T, nsPath, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	inNS(t, nsPath, func() (err error) { l, err = link.ByName(name); return err })
	return l
}
