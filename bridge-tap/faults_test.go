package bridgetap_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	vmnetns "github.com/vmcni/vmcni/internal/netns"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
)

// inProcess runs vm-bridge's commands in the test process.
type inProcess struct {
	e    *testEnv
	conf map[string]any
}

func (ip *inProcess) args(containerID, nsPath string, extra map[string]any) *skel.CmdArgs {
	return testutil.CmdArgs("vmct-inproc", containerID, nsPath, "eth0", ip.conf, extra)
}

func (ip *inProcess) add(containerID, nsPath string, prev *current.Result, opts ...plugin.Option) error {
	extra := map[string]any{}
	if prev != nil {
		extra["prevResult"] = prev
	}
	p := bridgetap.New(append([]plugin.Option{plugin.WithStdout(io.Discard)}, opts...)...)
	return p.Add(ip.args(containerID, nsPath, extra))
}

func (ip *inProcess) del(containerID, nsPath string, prev *current.Result) error {
	extra := map[string]any{}
	if prev != nil {
		extra["prevResult"] = prev
	}
	return bridgetap.New().Del(ip.args(containerID, nsPath, extra))
}

func (ip *inProcess) gc() error {
	return bridgetap.New().GC(ip.args("gc", "", map[string]any{"cni.dev/valid-attachments": []any{}}))
}

// prevFromPtp runs the reference ptp plugin alone and returns its result,
// the prevResult a chained vm-bridge gets.
func prevFromPtp(t *testing.T, e *testEnv, containerID, nsPath string) (*current.Result, *testutil.CNI) {
	cni := e.cni("1.1.0", e.refPtp())
	res, err := cni.Add(testutil.Runtime(containerID, nsPath, "eth0"))
	if err != nil {
		t.Fatalf("ptp ADD: %v", err)
	}
	return res, cni
}

// TestFaultAfterEachStep fails ADD at each of its fault points, between
// steps and inside them (a link created but not configured), and checks
// the rollback leaves host and netns exactly as before; then crashes ADD
// there (no rollback) and checks DEL, or GC, cleans up. The test's host
// bridge is deleted before each ADD, so every ADD creates it and the
// sweep also fails EnsureBridge between the create and the SetUp.
func TestFaultAfterEachStep(t *testing.T) {
	for _, chained := range []bool{false, true} {
		for _, mode := range modes {
			name := mode
			if chained {
				name = "after-ptp/" + mode
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t)
				t.Setenv("CNI_PATH", e.bin)
				ip := &inProcess{e: e, conf: e.vmBridge(mode, map[string]any{"ipMasq": true})}
				if chained {
					ip.conf = e.chainedVMBridge(mode)
				}
				ns := testutil.NewNS(t)
				var prev *current.Result
				if chained {
					var ptp *testutil.CNI
					prev, ptp = prevFromPtp(t, e, "fault", ns.Path)
					t.Cleanup(func() { _ = ptp.Del(testutil.Runtime("fault", ns.Path, "eth0")) })
				}
				nsBefore := testutil.TakeNetnsSnapshot(t, ns.Path)
				hostBefore := testutil.TakeSnapshot(t, e.dirs(), e.bridge)
				points := testutil.FaultSweep{
					Add:   func(opts ...plugin.Option) error { return ip.add("fault", ns.Path, prev, opts...) },
					Del:   func() error { return ip.del("fault", ns.Path, prev) },
					GC:    ip.gc,
					Reset: func() { _ = link.DeleteByName(e.bridge) },
					Same: func(t testing.TB, when string) {
						t.Helper()
						testutil.AssertSameNetns(t, ns.Path, nsBefore)
						testutil.AssertSameHost(t, hostBefore, e.dirs(), e.bridge)
					},
					Crash:    true,
					FailUndo: true,
				}.Run(t)
				if !chained && !slices.Contains(points, "link "+e.bridge+" created") {
					t.Fatalf("the sweep never stopped EnsureBridge half way: %q", points)
				}
			})
		}
	}
}

// TestEnsureBridgeHalfWay: EnsureBridge fails after creating the host
// bridge and before bringing it up; the rollback deletes the bridge.
func TestEnsureBridgeHalfWay(t *testing.T) {
	e := newEnv(t)
	t.Setenv("CNI_PATH", e.bin)
	ip := &inProcess{e: e, conf: e.vmBridge(bridgetap.ModeTCFilter, nil)}
	ns := testutil.NewNS(t)
	failSetUp := plugin.WithStepHook(func(p string) error {
		if p == "link "+e.bridge+" created" {
			return testutil.ErrInjected
		}
		return nil
	})
	if err := ip.add("half", ns.Path, nil, failSetUp); !errors.Is(err, testutil.ErrInjected) {
		t.Fatalf("ADD: %v", err)
	}
	if link.Exists(e.bridge) {
		t.Fatal("the half-made bridge was left on the host")
	}
	e.assertClean()
}

// afterPtp is a test env with a pod netns whose eth0 the reference ptp
// plugin made (removed at cleanup), and ptp's result: the prevResult of a
// chained vm-bridge.
func afterPtp(t *testing.T, containerID string) (*testEnv, *testutil.NS, *current.Result) {
	e := newEnv(t)
	t.Setenv("CNI_PATH", e.bin)
	ns := testutil.NewNS(t)
	prev, ptp := prevFromPtp(t, e, containerID, ns.Path)
	t.Cleanup(func() { _ = ptp.Del(testutil.Runtime(containerID, ns.Path, "eth0")) })
	return e, ns, prev
}

// TestSharedIngressQdisc: the pod interface already has an ingress qdisc
// with another component's filter; vm-bridge's rollback and DEL remove
// only their own filter, and the other one keeps working.
func TestSharedIngressQdisc(t *testing.T) {
	e, ns, prev := afterPtp(t, "shared")
	const foreignPrio = 7
	inNS(t, ns.Path, func() error {
		pod, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		mirror := netlink.NewMirredAction(lo.Attrs().Index) // a copy to lo: harmless
		mirror.MirredAction, mirror.Action = netlink.TCA_EGRESS_MIRROR, netlink.TC_ACT_PIPE
		if err = netlink.QdiscAdd(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: pod.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}); err != nil {
			return err
		}
		return netlink.FilterAdd(&netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: pod.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0),
				Priority: foreignPrio, Protocol: unix.ETH_P_ALL},
			Sel:     &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: 1, Keys: []netlink.TcU32Key{{}}},
			Actions: []netlink.Action{mirror},
		})
	})
	foreignLeft := func(when string) {
		t.Helper()
		inNS(t, ns.Path, func() error {
			pod, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			filters, err := netlink.FilterList(pod, netlink.MakeHandle(0xffff, 0))
			if err != nil {
				return err
			}
			prios := map[uint16]bool{}
			for _, f := range filters {
				prios[f.Attrs().Priority] = true
			}
			if !prios[foreignPrio] || prios[link.RedirectPriority] {
				t.Fatalf("%s: ingress filter priorities %v, want only the foreign %d", when, prios, foreignPrio)
			}
			return nil
		})
	}
	ip := &inProcess{e: e, conf: e.chainedVMBridge(bridgetap.ModeTCFilter)}
	failLate := plugin.WithStepHook(func(p string) error {
		if p == "hint" {
			return testutil.ErrInjected
		}
		return nil
	})
	if err := ip.add("shared", ns.Path, prev, failLate); !errors.Is(err, testutil.ErrInjected) {
		t.Fatalf("ADD: %v", err)
	}
	foreignLeft("after the rollback")
	if err := ip.add("shared", ns.Path, prev); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := ip.del("shared", ns.Path, prev); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	foreignLeft("after DEL")
}

// TestGCNetnsReused: the pod's named netns is deleted and another one is
// created under the same path; GC of the stale attachment must not enter
// it (its tap_eth0 belongs to someone else) and still cleans the host.
func TestGCNetnsReused(t *testing.T) {
	e := newEnv(t)
	t.Setenv("CNI_PATH", e.bin)
	ns := testutil.NewNS(t)
	ip := &inProcess{e: e, conf: e.vmBridge(bridgetap.ModeTCFilter, nil)}
	if err := ip.add("reused", ns.Path, nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	ns.Delete()
	if _, err := vmnetns.CreateNamed(ns.Name); err != nil {
		t.Fatal(err)
	}
	inNS(t, ns.Path, func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "tap_eth0"}})
	})
	if err := ip.gc(); err != nil {
		t.Fatalf("GC: %v", err)
	}
	inNS(t, ns.Path, func() error {
		if _, err := netlink.LinkByName("tap_eth0"); err != nil {
			t.Fatalf("GC deleted a link in the namespace that reused the path: %v", err)
		}
		return nil
	})
	e.assertClean()
}

// TestTapNameTaken: a tap called like vm-bridge's already exists in the
// pod netns (another runtime's); ADD fails instead of attaching to it
// (IFF_TUN_EXCL), and its rollback leaves that tap alone.
func TestTapNameTaken(t *testing.T) {
	e, ns, prev := afterPtp(t, "taken")
	inNS(t, ns.Path, func() error {
		_, err := link.CreateTap(context.Background(), link.Tap{Name: "tap_eth0"})
		return err
	})
	nsBefore := testutil.TakeNetnsSnapshot(t, ns.Path)
	ip := &inProcess{e: e, conf: e.chainedVMBridge(bridgetap.ModeTCFilter)}
	if err := ip.add("taken", ns.Path, prev); err == nil {
		t.Fatal("ADD attached to a tap it did not create")
	}
	testutil.AssertSameNetns(t, ns.Path, nsBefore)
}
