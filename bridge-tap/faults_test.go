package bridgetap_test

import (
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
)

var errInjected = errors.New("injected fault")

// inProcess runs vm-bridge's commands in the test process.
type inProcess struct {
	e    *testEnv
	conf map[string]any
}

func (ip *inProcess) args(containerID, nsPath string, extra map[string]any) *skel.CmdArgs {
	c := map[string]any{"cniVersion": "1.1.0", "name": "vmct-inproc"}
	for k, v := range ip.conf {
		c[k] = v
	}
	for k, v := range extra {
		c[k] = v
	}
	data, _ := json.Marshal(c)
	return &skel.CmdArgs{ContainerID: containerID, Netns: nsPath, IfName: "eth0", StdinData: data}
}

func (ip *inProcess) add(hook func(string) error, containerID, nsPath string, prev *current.Result, opts ...plugin.Option) error {
	extra := map[string]any{}
	if prev != nil {
		extra["prevResult"] = prev
	}
	opts = append(opts, plugin.WithStdout(io.Discard), plugin.WithStepHook(hook))
	p := bridgetap.New(opts...)
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

// netnsSnapshot is the pod netns's state, to compare before ADD and after
// a rolled-back ADD.
func netnsSnapshot(t *testing.T, nsPath string) testutil.Snapshot {
	var s testutil.Snapshot
	inNS(t, nsPath, func() error { s = testutil.TakeSnapshot(t, nil); return nil })
	return s
}

func assertSameNetns(t *testing.T, nsPath string, before testutil.Snapshot) {
	t.Helper()
	inNS(t, nsPath, func() error { testutil.AssertSameHost(t, before, nil); return nil })
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

// TestFaultAfterEachStep fails ADD right after each of its side effects and
// checks the rollback leaves host and netns exactly as before; then crashes
// ADD at each step (no rollback) and checks DEL, or GC, cleans up.
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
				nsBefore := netnsSnapshot(t, ns.Path)
				hostBefore := testutil.TakeSnapshot(t, e.dirs(), e.bridge)

				var steps []string
				if err := ip.add(func(s string) error { steps = append(steps, s); return nil }, "fault", ns.Path, prev); err != nil {
					t.Fatalf("clean ADD: %v", err)
				}
				if err := ip.del("fault", ns.Path, prev); err != nil {
					t.Fatalf("DEL: %v", err)
				}
				if len(steps) < 4 {
					t.Fatalf("only %d steps recorded: %v", len(steps), steps)
				}
				for i, failAt := range steps {
					err := ip.add(func(s string) error {
						if s == failAt {
							return errInjected
						}
						return nil
					}, "fault", ns.Path, prev)
					if !errors.Is(err, errInjected) {
						t.Fatalf("fault at %q: ADD returned %v", failAt, err)
					}
					assertSameNetns(t, ns.Path, nsBefore)
					testutil.AssertSameHost(t, hostBefore, e.dirs(), e.bridge)

					crashAt(t, ip, failAt, ns.Path, prev)
					if i%2 == 0 {
						if err := ip.del("fault", ns.Path, prev); err != nil {
							t.Fatalf("DEL after crash at %q: %v", failAt, err)
						}
					} else if err := ip.gc(); err != nil {
						t.Fatalf("GC after crash at %q: %v", failAt, err)
					}
					assertSameNetns(t, ns.Path, nsBefore)
					testutil.AssertSameHost(t, hostBefore, e.dirs(), e.bridge)
				}
			})
		}
	}
}

// crashAt runs ADD and stops it at step failAt without rolling back, which
// leaves what the plugin dying there would leave.
func crashAt(t *testing.T, ip *inProcess, failAt, nsPath string, prev *current.Result) {
	t.Helper()
	err := ip.add(func(s string) error {
		if s == failAt {
			return errInjected
		}
		return nil
	}, "fault", nsPath, prev, plugin.WithoutRollback())
	if !errors.Is(err, errInjected) {
		t.Fatalf("crash at %q: ADD returned %v", failAt, err)
	}
}
