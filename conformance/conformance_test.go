package conformance_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/conformance"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
)

// subnets hands each suite run its own 10.231.x.0/24.
var subnets = testutil.NewSubnets(231)

// env is one suite run's private world: a host bridge, a subnet, state and
// IPAM dirs.
type env struct {
	t        *testing.T
	bin      string
	bridge   string
	subnet   string
	stateDir string
	ipamDir  string
	sockDir  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	e := &env{
		t: t, bin: testutil.Binaries(t), bridge: testutil.UniqueName("vmctbr"), subnet: subnets.Next(),
		stateDir: filepath.Join(dir, "state"), ipamDir: filepath.Join(dir, "ipam"), sockDir: filepath.Join(dir, "sock"),
	}
	t.Cleanup(func() { _ = link.DeleteByName(e.bridge) })
	return e
}

func (e *env) ipam() map[string]any {
	return map[string]any{
		"type": "host-local", "dataDir": e.ipamDir, "ranges": [][]map[string]string{{{"subnet": e.subnet}}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
}

func (e *env) vmBridge(mode string) map[string]any {
	return map[string]any{"type": "vm-bridge", "mode": mode, "bridge": e.bridge, "isGateway": true, "stateDir": e.stateDir, "ipam": e.ipam()}
}

// danDir is a Kata DAN directory under the watched state dir, made before
// the suite's first snapshot (kataDanDir).
func (e *env) danDir() string {
	dir := filepath.Join(e.stateDir, "dans")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

func (e *env) refBridge() map[string]any {
	return map[string]any{"type": "bridge", "bridge": e.bridge, "isGateway": true, "ipam": e.ipam()}
}

func conflist(name string, plugins ...map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": plugins})
	return data
}

func mustJSON(v any) []byte {
	data, _ := json.Marshal(v)
	return data
}

// merged returns a copy of base with the keys of each extra set over it.
func merged(base map[string]any, extra ...map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for _, e := range extra {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}

// invalidConf is plugin config conf with overrides, as a standalone config
// (cniVersion, name) the plugin must reject with code 7.
func invalidConf(conf, overrides map[string]any) []byte {
	return mustJSON(merged(conf, overrides, map[string]any{"cniVersion": "1.1.0", "name": "vmct-bad"}))
}

// run runs the suite and fails t for each failed check. The report is
// logged, and written to $VMCNI_CONFORMANCE_REPORT_DIR/<name>.{txt,json}
// when that is set (to publish it).
func (e *env) run(cfg conformance.Config) *conformance.Report {
	e.t.Helper()
	cfg.HintFile = true // vmcni plugins write one; a run without a VM device skips it anyway
	cfg.IgnoreLinks = append(cfg.IgnoreLinks, e.bridge)
	return e.runAsNewUser(cfg)
}

// runAsNewUser is run as a user judging another author's plugin runs the
// suite: without the vmcni-specific vm-hint check, and without leaving the
// env's host bridge out of the comparisons.
func (e *env) runAsNewUser(cfg conformance.Config) *conformance.Report {
	e.t.Helper()
	cfg.BinDirs = append(cfg.BinDirs, e.bin)
	cfg.WatchDirs = append(cfg.WatchDirs, e.stateDir, e.ipamDir, e.sockDir)
	if cfg.Parallel == 0 {
		cfg.Parallel = 6
	}
	rep, err := conformance.Run(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("run suite: %v", err)
	}
	e.t.Log("\n" + rep.Text())
	if dir := os.Getenv("VMCNI_CONFORMANCE_REPORT_DIR"); dir != "" {
		name := strings.NewReplacer("/", "_").Replace(e.t.Name())
		js, _ := rep.JSON()
		_ = os.WriteFile(filepath.Join(dir, name+".json"), js, 0o644)
		_ = os.WriteFile(filepath.Join(dir, name+".txt"), []byte(rep.Text()), 0o644)
	}
	return rep
}

func assertPassed(t *testing.T, rep *conformance.Report, mustRun ...string) {
	t.Helper()
	for _, c := range rep.Failed() {
		t.Errorf("check %s failed: %s\n%s", c.Name, c.Reason, strings.Join(c.Details, "\n"))
	}
	for _, name := range mustRun {
		if c, ok := rep.Check(name); !ok || c.Status != conformance.Pass {
			t.Errorf("check %s: want pass, got %+v", name, c)
		}
	}
}

var modes = []string{"tcfilter", "bridge", "macvtap"}

// protocolChecks must pass (not only not fail) on every plugin tested here.
var protocolChecks = []string{
	conformance.CheckVersion, conformance.CheckLifecycle, conformance.CheckResultInterfaces, conformance.CheckStdout,
	conformance.CheckResultVersions, conformance.CheckDelWithoutAdd, conformance.CheckDelNetnsGone,
	conformance.CheckErrMalformed, conformance.CheckErrVersion, conformance.CheckErrEnv, conformance.CheckStatus,
	conformance.CheckConcurrency, conformance.CheckKubeletArgs,
}

func TestVMBridgeStandalone(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			conf := e.vmBridge(mode)
			if mode != "macvtap" { // (a macvtap has no Kata DAN type)
				conf["kataDanDir"] = e.danDir()
			}
			rep := e.run(conformance.Config{
				Conflist: conflist("vmct-sa-"+mode, conf),
				InvalidConfigs: [][]byte{
					invalidConf(e.vmBridge(mode), map[string]any{"mode": "nosuchmode"}),
					invalidConf(e.vmBridge(mode), map[string]any{"mtu": 20}),
				},
			})
			assertPassed(t, rep, append(protocolChecks, conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckFailedAdd, conformance.CheckTamper,
				conformance.CheckErrInvalidConfig, conformance.CheckGCValid, conformance.CheckGCLegacyKey)...)
		})
	}
}

// TestVMBridgeFollowedByMetaPlugins: vm-bridge followed by the reference
// tuning (sysctl and MTU on the pod interface) and bandwidth (tc shaping on
// the host veth, ingress through an ifb) meta plugins, in every mode.
func TestVMBridgeFollowedByMetaPlugins(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			tuning := map[string]any{"type": "tuning", "sysctl": map[string]string{"net.ipv4.conf.eth0.arp_notify": "1"}}
			if mode != "tcfilter" {
				// A bridge port or a passthru macvtap's lower device is
				// promiscuous, and tuning's CHECK compares promisc even when
				// unset (default false): say what the pod interface is.
				tuning["promisc"] = true
			}
			bandwidth := map[string]any{"type": "bandwidth",
				"ingressRate": 100_000_000, "ingressBurst": 1_000_000, "egressRate": 100_000_000, "egressBurst": 1_000_000}
			rep := e.run(conformance.Config{
				Conflist: conflist("vmct-meta-"+mode, e.vmBridge(mode), tuning, bandwidth),
				Skip: map[string]string{
					conformance.CheckGCValid:     "reference tuning and bandwidth v1.9.1 do not implement GC",
					conformance.CheckGCLegacyKey: "reference tuning and bandwidth v1.9.1 do not implement GC",
				},
			})
			assertPassed(t, rep, append(protocolChecks, conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckTamper)...)
		})
	}
}

// TestVMBridgeFollowedByPortmapAndFirewall: vm-bridge followed by the
// reference portmap and firewall (iptables backend) plugins, in every mode.
func TestVMBridgeFollowedByPortmapAndFirewall(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("skipped: portmap and firewall need iptables (apt-get install iptables)")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			portmap := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true}
			firewall := map[string]any{"type": "firewall", "backend": "iptables"}
			rep := e.run(conformance.Config{
				Conflist: conflist("vmct-pf-"+mode, e.vmBridge(mode), portmap, firewall),
				Skip: map[string]string{
					conformance.CheckGCValid:     "reference portmap and firewall v1.9.1 do not implement GC",
					conformance.CheckGCLegacyKey: "reference portmap and firewall v1.9.1 do not implement GC",
				},
			})
			assertPassed(t, rep, append(protocolChecks, conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckTamper)...)
		})
	}
}

func TestVMBridgeChainedAfterBridge(t *testing.T) {
	runChained(t, func(e *env) map[string]any { return e.refBridge() }, refNoGC)
}

// TestVMBridgeChainedAfterPTP: vm-bridge after the reference ptp plugin
// (a veth whose host end is routed, no bridge).
func TestVMBridgeChainedAfterPTP(t *testing.T) {
	runChained(t, func(e *env) map[string]any { return map[string]any{"type": "ptp", "ipam": e.ipam()} },
		"reference ptp and host-local v1.9.1 do not implement GC: a stale attachment's host-local lease stays")
}

// runChained runs the suite, in every mode, on vm-bridge chained after the
// interface plugin first returns.
func runChained(t *testing.T, first func(e *env) map[string]any, noGC string) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			chained := map[string]any{"type": "vm-bridge", "mode": mode, "stateDir": e.stateDir}
			rep := e.run(conformance.Config{
				Conflist:       conflist("vmct-ch-"+mode, first(e), chained),
				InvalidConfigs: [][]byte{invalidConf(chained, map[string]any{"queues": 0})},
				Skip:           map[string]string{conformance.CheckGCValid: noGC, conformance.CheckGCLegacyKey: noGC},
			})
			assertPassed(t, rep, append(slices.Clone(protocolChecks), conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckFailedAdd,
				conformance.CheckTamper, conformance.CheckErrInvalidConfig)...)
		})
	}
}

// refNoGC is why GC checks are declared not applicable when the reference
// bridge plugin and host-local are in the chain.
const refNoGC = "reference bridge and host-local v1.9.1 do not implement GC (/* FIXME GC */ in their main.go): a stale attachment's host-local lease stays"

func TestVhostUserBackendNone(t *testing.T) {
	e := newEnv(t)
	conf := map[string]any{"type": "vm-vhostuser", "backend": "none", "socketDir": e.sockDir, "stateDir": e.stateDir,
		"kataDanDir": e.danDir()}
	bad := map[string]any{"cniVersion": "1.1.0", "name": "vmct-bad", "type": "vm-vhostuser", "backend": "bogus"}
	badDir := map[string]any{"cniVersion": "1.1.0", "name": "vmct-bad", "type": "vm-vhostuser", "backend": "none", "socketDir": "relative/dir"}
	rep := e.run(conformance.Config{
		Conflist:       conflist("vmct-vhu", conf),
		InvalidConfigs: [][]byte{mustJSON(bad), mustJSON(badDir)},
	})
	assertPassed(t, rep, append(protocolChecks, conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckErrInvalidConfig,
		conformance.CheckGCValid, conformance.CheckGCLegacyKey)...)
	if c, _ := rep.Check(conformance.CheckFailedAdd); c.Status != conformance.Skip {
		t.Errorf("%s: vm-vhostuser makes no netns interface, want skip, got %+v", conformance.CheckFailedAdd, c)
	}
}

// TestReferenceBridge runs the suite on the reference bridge plugin: it
// passes every check that applies, which shows the suite asks nothing the
// CNI spec does not.
func TestReferenceBridge(t *testing.T) {
	e := newEnv(t)
	rep := e.run(conformance.Config{
		Conflist: conflist("vmct-ref", e.refBridge()),
		Skip: map[string]string{
			conformance.CheckGCValid:     refNoGC,
			conformance.CheckGCLegacyKey: refNoGC,
		},
	})
	assertPassed(t, rep, append(protocolChecks, conformance.CheckFailedAdd, conformance.CheckTamper)...)
	for _, check := range []string{conformance.CheckVMDevice, conformance.CheckVMHint} {
		if c, _ := rep.Check(check); c.Status != conformance.Skip {
			t.Errorf("%s on the reference bridge: want skip (no VM device), got %+v", check, c)
		}
	}
}

// TestFirecrackerStyleChain judges Firecracker's CNI chain as its users
// run it: the reference bridge and host-local, then a plugin that
// redirects the pod interface to a tap and reports the pseudo-interface
// (tc-redirect-tap's role; tc-redirect-tap itself is not on the module
// proxy, and the reference tap plugin cannot take its place: it creates
// CNI_IFNAME itself and ignores prevResult, so its ADD after the bridge
// fails with "file exists"). vm-bridge tcfilter is that plugin here, run
// without -hint-file and without -ignore-link: vm-device passes on what
// firecracker-go-sdk and other runtimes read, vm-hint is not asked for,
// and the host bridge the reference plugin keeps by design makes
// add-check-del-del fail with the -ignore-link that leaves it out.
func TestFirecrackerStyleChain(t *testing.T) {
	e := newEnv(t)
	chained := map[string]any{"type": "vm-bridge", "mode": "tcfilter", "stateDir": e.stateDir}
	rep := e.runAsNewUser(conformance.Config{
		Conflist: conflist("vmct-fc", e.refBridge(), chained),
		Skip: map[string]string{
			conformance.CheckGCValid:     refNoGC,
			conformance.CheckGCLegacyKey: refNoGC,
		},
	})
	expect(t, rep, conformance.CheckVMDevice, conformance.Pass, "firecracker-go-sdk vmconf takes it")
	expect(t, rep, conformance.CheckVMHint, conformance.Skip, "-hint-file")
	expect(t, rep, conformance.CheckLifecycle, conformance.Fail, "-ignore-link "+e.bridge)
}

// TestBrokenPlugin shows the suite catches a plugin that leaks a host link
// or prints junk on stdout, and blames the right checks.
func TestBrokenPlugin(t *testing.T) {
	badDir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(badDir, "vmct-bad"), "./conformance/testdata/badplugin")
	cmd.Dir = testutil.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build badplugin: %v\n%s", err, out)
	}
	leakPrefix := testutil.UniqueName("vmctlk")[:9]
	t.Cleanup(func() {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, leakPrefix) {
				_ = netlink.LinkDel(l)
			}
		}
	})
	t.Run("leak", func(t *testing.T) {
		rep := newEnv(t).run(conformance.Config{
			BinDirs:  []string{badDir},
			Conflist: conflist("vmct-leak", map[string]any{"type": "vmct-bad", "misbehave": "leak", "leakPrefix": leakPrefix}),
			Parallel: 2,
		})
		expect(t, rep, conformance.CheckVersion, conformance.Pass, "")
		expect(t, rep, conformance.CheckDelWithoutAdd, conformance.Pass, "")
		expect(t, rep, conformance.CheckLifecycle, conformance.Fail, "+ link "+leakPrefix)
		expect(t, rep, conformance.CheckResultInterfaces, conformance.Fail, `"eth0"`)
		expect(t, rep, conformance.CheckDelNetnsGone, conformance.Fail, "+ link "+leakPrefix)
		expect(t, rep, conformance.CheckConcurrency, conformance.Fail, "+ link "+leakPrefix)
		expect(t, rep, conformance.CheckErrMalformed, conformance.Fail, "code 999")
		expect(t, rep, conformance.CheckErrEnv, conformance.Fail, "")
		expect(t, rep, conformance.CheckLifecycle, conformance.Fail, "-ignore-link "+leakPrefix)
		expect(t, rep, conformance.CheckVMDevice, conformance.Skip, "")
		expect(t, rep, conformance.CheckVMHint, conformance.Skip, "")
	})
	t.Run("junk", func(t *testing.T) {
		rep := newEnv(t).run(conformance.Config{
			BinDirs:  []string{badDir},
			Conflist: conflist("vmct-junk", map[string]any{"type": "vmct-bad", "misbehave": "junk"}),
			Parallel: 2,
		})
		expect(t, rep, conformance.CheckVersion, conformance.Pass, "")
		expect(t, rep, conformance.CheckStdout, conformance.Fail, "plugin says hello")
		expect(t, rep, conformance.CheckLifecycle, conformance.Fail, "ADD")
		expect(t, rep, conformance.CheckResultVersions, conformance.Fail, "")
	})
}

// expect checks one check's status and that its reason or details contain
// text.
func expect(t *testing.T, rep *conformance.Report, name string, want conformance.Status, text string) {
	t.Helper()
	c, ok := rep.Check(name)
	if !ok {
		t.Errorf("check %s did not run", name)
		return
	}
	all := c.Reason + "\n" + strings.Join(c.Details, "\n")
	if c.Status != want || !strings.Contains(all, text) {
		t.Errorf("check %s: want %s mentioning %q, got %s: %s", name, want, text, c.Status, all)
	}
}

// TestVhostUserOVSDPDK runs the suite on vm-vhostuser with a real OVS-DPDK
// backend (private instance, --no-huge): ports come and go with the
// attachments, and GC reclaims them; every hygiene comparison includes the
// bridge's ports.
func TestVhostUserOVSDPDK(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	e := newEnv(t)
	ovs := testutil.StartOVS(t)
	bridge := testutil.UniqueName("vmctob")
	ovs.AddBridge(bridge)
	sockDir, err := os.MkdirTemp("/tmp", "vmct-cvhu") // short: sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	conf := map[string]any{"type": "vm-vhostuser", "backend": "ovs-dpdk", "bridge": bridge, "ovsdb": ovs.DB,
		"socketDir": sockDir, "stateDir": e.stateDir, "ipam": e.ipam()}
	ports := func() ([]string, error) {
		return strings.Split(ovs.Vsctl("--bare", "--columns=name,external_ids", "list", "Port"), "\n"), nil
	}
	rep := e.run(conformance.Config{Conflist: conflist("vmct-ovs", conf), WatchDirs: []string{sockDir}, ExtraState: ports})
	assertPassed(t, rep, append(protocolChecks, conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckGCValid, conformance.CheckGCLegacyKey)...)
	if ports := ovs.Vsctl("--bare", "--columns=name", "find", "Port", "external_ids:vmcni-network=vmct-ovs"); ports != "" {
		t.Fatalf("OVS ports left after the suite: %s", ports)
	}
}

// TestExtraStateCompared: the caller's extra state takes part in every
// hygiene comparison: state that appears during a check (here a stand-in
// for an OVS port the plugin leaked on its first ADD) fails that check and
// shows in the diff; the checks after it compare against the new state.
func TestExtraStateCompared(t *testing.T) {
	e := newEnv(t)
	var leaked bool
	rep := e.run(conformance.Config{
		Conflist: conflist("vmct-extra", map[string]any{"type": "vm-vhostuser", "backend": "none",
			"socketDir": e.sockDir, "stateDir": e.stateDir}),
		ExtraState: func() ([]string, error) {
			if !leaked {
				leaked = true
				return nil, nil
			}
			return []string{"port leaked-by-first-add"}, nil
		},
		Parallel: 2,
	})
	expect(t, rep, conformance.CheckLifecycle, conformance.Fail, "+ state port leaked-by-first-add")
	expect(t, rep, conformance.CheckDelWithoutAdd, conformance.Pass, "")
}
