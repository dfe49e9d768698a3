package sriov_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/hostsnap"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var nsDo = netns.Do

// testEnv is one test's private world: a dedicated "host" netns (so that
// snapshots taken by other test runs of the real host netns never see our
// links), a simulated PCI tree with its kernel, a state dir and a
// host-local data dir. Every plugin run, in-process or through libcni,
// happens on a thread inside the test's host netns.
type testEnv struct {
	t        *testing.T
	bin      string
	host     *testutil.NS
	k        *sriovsim.Kernel
	stateDir string
	ipamDir  string
	subnet   string
}

// subnets hands each test its own 10.x.y.0/24.
var subnets = testutil.NewSubnets(150)

func newEnv(t *testing.T, vfs int, sharedGroup bool) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	e := &testEnv{
		t: t, bin: testutil.Binaries(t), host: testutil.NewNS(t),
		stateDir: filepath.Join(dir, "state"), ipamDir: filepath.Join(dir, "ipam"), subnet: subnets.Next(),
	}
	e.k = sriovsim.Start(t, sriovsim.Options{VFs: vfs, SharedGroup: sharedGroup, HostNS: e.host.Path})
	return e
}

func (e *testEnv) dirs() []string { return []string{e.stateDir, e.ipamDir} }

// inHost runs fn on a thread inside the test's host netns; processes it
// starts (libcni forks from the calling thread) inherit that netns.
func (e *testEnv) inHost(fn func() error) error { return nsDo(e.host.Path, fn) }

// snapshot is the test host netns's links, addresses, routes and the
// state and IPAM files.
func (e *testEnv) snapshot() testutil.Snapshot {
	var s testutil.Snapshot
	if err := e.inHost(func() error { s = testutil.TakeSnapshot(e.t, e.dirs()); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// assertSnapshot fails the test (from the test's goroutine: the snapshot
// is taken on a thread in the host netns) when the host differs.
func (e *testEnv) assertSnapshot(before testutil.Snapshot) {
	e.t.Helper()
	if diff := hostsnap.Diff(before, e.snapshot()); len(diff) > 0 {
		e.t.Fatalf("host changed:\n%s", strings.Join(diff, "\n"))
	}
}

func (e *testEnv) ipam() map[string]any {
	return map[string]any{
		"type": "host-local", "dataDir": e.ipamDir, "ranges": [][]map[string]string{{{"subnet": e.subnet}}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
}

// conf is a vm-sriov plugin config for VF vf.
func (e *testEnv) conf(mode string, vf int, extra map[string]any) map[string]any {
	c := map[string]any{
		"type": sriovsim.PluginType, "mode": mode, "deviceID": sriovsim.VFAddr(vf), "sysfsRoot": e.k.Root,
		"stateDir": e.stateDir, "bindTimeout": "3s", "ipam": e.ipam(),
	}
	return merged(c, extra)
}

// merged is c with extra's keys set, or removed where extra has nil.
func merged(c, extra map[string]any) map[string]any {
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// allKnobs sets every PF-side setting away from its default.
func allKnobs(extra map[string]any) map[string]any {
	c := map[string]any{
		"mac": "02:11:22:33:44:55", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad",
		"spoofchk": "off", "trust": "on", "link_state": "enable", "min_tx_rate": 100, "max_tx_rate": 1000,
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// cni drives the built vm-sriov binary through libcni.
type cni struct {
	e *testEnv
	c *testutil.CNI
}

func (e *testEnv) cni(plugin map[string]any) *cni {
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "vmct-sriov", "plugins": []any{plugin}})
	return &cni{e: e, c: testutil.NewCNI(e.t, e.bin, data)}
}

func (c *cni) add(rt *libcni.RuntimeConf) (res *current.Result, err error) {
	if herr := c.e.inHost(func() error { res, err = c.c.Add(rt); return nil }); herr != nil {
		return nil, herr
	}
	return res, err
}

func (c *cni) run(fn func() error) error {
	var err error
	if herr := c.e.inHost(func() error { err = fn(); return nil }); herr != nil {
		return herr
	}
	return err
}

func (c *cni) check(rt *libcni.RuntimeConf) error {
	return c.run(func() error { return c.c.Check(rt) })
}
func (c *cni) del(rt *libcni.RuntimeConf) error { return c.run(func() error { return c.c.Del(rt) }) }
func (c *cni) status() error                    { return c.run(c.c.Status) }
func (c *cni) gc(valid ...*libcni.RuntimeConf) error {
	return c.run(func() error { return c.c.GC(valid...) })
}

// inProcess runs vm-sriov's commands in the test process (for fault
// injection), on a thread in the test's host netns.
type inProcess struct {
	e    *testEnv
	conf map[string]any
}

func (ip *inProcess) args(containerID, nsPath string, extra map[string]any) *skel.CmdArgs {
	return testutil.CmdArgs("vmct-sriov", containerID, nsPath, "net1", ip.conf, extra)
}

func (ip *inProcess) add(containerID, nsPath string, opts ...plugin.Option) error {
	opts = append(opts, plugin.WithStdout(io.Discard))
	return ip.e.inHost(func() error {
		return sriov.New(opts...).WithVFController(sriovsim.VFControllerFor).Add(ip.args(containerID, nsPath, nil))
	})
}

func (ip *inProcess) del(containerID, nsPath string) error {
	return ip.e.inHost(func() error {
		return sriov.New().WithVFController(sriovsim.VFControllerFor).Del(ip.args(containerID, nsPath, nil))
	})
}

func (ip *inProcess) gc() error {
	return ip.e.inHost(func() error {
		return sriov.New().WithVFController(sriovsim.VFControllerFor).GC(ip.args("gc", "", map[string]any{"cni.dev/valid-attachments": []any{}}))
	})
}

// failAt returns a step hook failing at step.
func failAt(step string) func(string) error {
	return func(s string) error {
		if s == step {
			return testutil.ErrInjected
		}
		return nil
	}
}

// files lists the regular files under dir (lock files excluded).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != "lock" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
