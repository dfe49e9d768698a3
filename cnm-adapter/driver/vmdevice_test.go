package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/internal/hostcheck"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// moveIntoSandbox does what libnetwork does after Join: SrcName into the
// sandbox, renamed eth0, up.
func moveIntoSandbox(t *testing.T, src, sandbox string) {
	t.Helper()
	l, err := link.ByName(src)
	must(t, err)
	fd, err := os.Open(sandbox)
	must(t, err)
	defer fd.Close()
	must(t, link.MoveToNetns(l, int(fd.Fd()), "eth0"))
	must(t, netns.Do(sandbox, func() error {
		pod, lerr := link.ByName("eth0")
		if lerr != nil {
			return lerr
		}
		return link.SetUp(pod)
	}))
}

// moveOutOfSandbox is libnetwork's move back after Leave.
func moveOutOfSandbox(t *testing.T, src, sandbox string) {
	t.Helper()
	host, err := os.Open("/proc/self/ns/net")
	must(t, err)
	defer host.Close()
	must(t, netns.Do(sandbox, func() error {
		l, lerr := link.ByName("eth0")
		if lerr != nil {
			return lerr
		}
		return link.MoveToNetns(l, int(host.Fd()), src)
	}))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestVMDeviceLifecycle: a vmdevice=tcfilter network; the watcher builds
// the tap and hint once the interface is in the sandbox; a "crash" in the
// middle of the chained ADD (record "attaching") is undone by Reconcile,
// which then builds the device again; Leave removes it while the sandbox
// lives; DeleteEndpoint and DeleteNetwork leave the host as it was. A
// sandbox the interface never reaches gives a "failed" record and nothing
// else.
func TestVMDeviceLifecycle(t *testing.T) {
	f := newFixture(t)
	before := testutil.TakeSnapshot(t, f.dirs)
	ctx := context.Background()
	d := f.driver(nil)
	nid := id("v")
	bridge := testutil.UniqueName("vmct")
	sub := 100 + rand.IntN(150)
	must(t, d.CreateNetwork(ctx, &api.CreateNetworkRequest{NetworkID: nid,
		Options:  map[string]any{api.GenericOption: map[string]any{"bridge": bridge, "vmdevice": "tcfilter"}},
		IPv4Data: []api.IPAMData{{Pool: fmt.Sprintf("10.214.%d.0/24", sub), Gateway: fmt.Sprintf("10.214.%d.1/24", sub)}}}))
	t.Cleanup(func() { _ = d.DeleteNetwork(ctx, &api.NetworkRequest{NetworkID: nid}) })
	sandbox := testutil.NewNS(t)
	ep := id("e")
	resp, err := d.CreateEndpoint(ctx, &api.CreateEndpointRequest{NetworkID: nid, EndpointID: ep,
		Interface: &api.EndpointInterface{Address: fmt.Sprintf("10.214.%d.10/24", sub)}})
	must(t, err)
	mac := resp.Interface.MacAddress
	j, err := d.Join(ctx, &api.JoinRequest{NetworkID: nid, EndpointID: ep, SandboxKey: sandbox.Path})
	must(t, err)
	src := j.InterfaceName.SrcName
	time.Sleep(3 * vmPollInterval) // the watcher must wait for the interface
	moveIntoSandbox(t, src, sandbox.Path)

	tapThere := func() bool {
		var ok bool
		_ = netns.Do(sandbox.Path, func() error { ok = link.Exists("tap_eth0"); return nil })
		return ok
	}
	attached := func() bool {
		h, herr := hint.Read(f.dirs[0], ep, "eth0")
		return herr == nil && h.Guest.MAC == mac && tapThere()
	}
	waitFor(t, "the VM device", attached)
	// the watcher records the attachment after the plugin wrote the hint
	waitFor(t, "the VM device's record", func() bool {
		cur, cerr := f.store.Endpoint(ep)
		return cerr == nil && cur.VM != nil && cur.VM.Phase == state.VMAttached
	})
	rec, err := f.store.Endpoint(ep)
	must(t, err)
	if rec.VM == nil || rec.VM.Phase != state.VMAttached || rec.VM.Runtime.IfName != "eth0" || rec.Runtime.IfName != transferIfName {
		t.Fatalf("record: %+v vm %+v", rec, rec.VM)
	}

	t.Log("crash during the chained ADD, restart, reconcile")
	rec.VM.Phase = state.VMAttaching
	must(t, f.store.PutEndpoint(rec))
	d.StopVMWatches()
	d = f.driver(nil)
	must(t, d.Reconcile(ctx))
	waitFor(t, "the VM device rebuilt", attached)
	waitFor(t, "the record", func() bool {
		r, rerr := f.store.Endpoint(ep)
		return rerr == nil && r.VM != nil && r.VM.Phase == state.VMAttached
	})

	must(t, d.Leave(ctx, &api.EndpointRequest{NetworkID: nid, EndpointID: ep}))
	if tapThere() {
		t.Fatal("Leave left the tap")
	}
	if _, err = os.Stat(hint.Path(f.dirs[0], ep, "eth0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Leave left the hint: %v", err)
	}
	moveOutOfSandbox(t, src, sandbox.Path)
	must(t, d.DeleteEndpoint(ctx, &api.EndpointRequest{NetworkID: nid, EndpointID: ep}))

	t.Log("the interface never reaches the sandbox")
	d = New(f.store, WithCNI([]string{testutil.Binaries(t)}, f.dirs[2]), WithNamePrefix("vmct"),
		WithPluginStateDir(f.dirs[0]), WithVMDeviceTimeout(500*time.Millisecond))
	ep2 := id("f")
	_, err = d.CreateEndpoint(ctx, &api.CreateEndpointRequest{NetworkID: nid, EndpointID: ep2,
		Interface: &api.EndpointInterface{Address: fmt.Sprintf("10.214.%d.11/24", sub)}})
	must(t, err)
	_, err = d.Join(ctx, &api.JoinRequest{NetworkID: nid, EndpointID: ep2, SandboxKey: sandbox.Path})
	must(t, err)
	waitFor(t, "the failure record", func() bool {
		r, rerr := f.store.Endpoint(ep2)
		return rerr == nil && r.VM != nil && r.VM.Phase == state.VMFailed && r.VM.Error != ""
	})
	if tapThere() {
		t.Fatal("a failed VM device left a tap")
	}
	must(t, d.Leave(ctx, &api.EndpointRequest{NetworkID: nid, EndpointID: ep2}))
	must(t, d.DeleteNetwork(ctx, &api.NetworkRequest{NetworkID: nid}))
	sandbox.Delete()
	if c, _ := f.store.Count(); !c.Empty() {
		t.Fatalf("state not empty: %+v", c)
	}
	hostcheck.AssertSameHost(t, before, f.dirs, func(name string) bool {
		return name == bridge || name == d.srcName(ep) || name == d.srcName(ep2) || name == sandbox.Name
	})
}
