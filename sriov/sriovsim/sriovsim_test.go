package sriovsim_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// concurrency is the number of writers (VFs) of the concurrency tests.
const concurrency = 8

// parallel runs fn(0) … fn(n-1) at once and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func assertNoErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %d: %v", what, i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestConcurrentWrites: processes writing the same shared attribute at once
// (one VF address each, as vm-sriov does: with or without a newline) are
// each acted on, as the kernel handles every write() on its own.
func TestConcurrentWrites(t *testing.T) {
	k := sriovsim.Start(t, sriovsim.Options{VFs: concurrency, HostNS: testutil.NewNS(t).Path})
	before := k.State()
	fs := sriov.RootFS{Root: k.Root}
	value := func(i int) string {
		if i%2 == 0 {
			return sriovsim.VFAddr(i) + "\n"
		}
		return sriovsim.VFAddr(i)
	}
	for _, attr := range []string{"drivers/" + sriovsim.NetDriver + "/unbind", "drivers_probe"} {
		assertNoErrors(t, attr, parallel(concurrency, func(i int) error {
			return fs.WriteFile("sys/bus/pci/"+attr, []byte(value(i)))
		}))
		var want []string
		for i := range concurrency {
			want = append(want, attr+"="+sriovsim.VFAddr(i))
		}
		got := k.TakeWrites()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("writes to %s:\n got %q\nwant %q", attr, got, want)
		}
	}
	k.AssertState(t, before)
}

// TestConcurrentVFIO runs the vm-sriov binary through libcni: concurrent
// vfio-mode ADDs of different VFs (each unbinding its VF from iavf and
// probing it, through the same shared attributes), then concurrent DELs.
// All succeed and the simulated host is as before.
func TestConcurrentVFIO(t *testing.T) {
	testutil.RequiresRoot(t)
	bin, host := testutil.Binaries(t), testutil.NewNS(t)
	k := sriovsim.Start(t, sriovsim.Options{VFs: concurrency, HostNS: host.Path})
	before := k.State()
	stateDir := t.TempDir()
	clients := make([]*testutil.CNI, concurrency)
	rts := make([]*libcni.RuntimeConf, concurrency)
	for i := range concurrency {
		data, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "vmct-sriovsim", "plugins": []any{map[string]any{
			"type": sriovsim.PluginType, "mode": sriov.ModeVFIO, "deviceID": sriovsim.VFAddr(i), "sysfsRoot": k.Root,
			"stateDir": stateDir, "bindTimeout": "3s",
		}}})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = testutil.NewCNI(t, bin, data)
		rts[i] = testutil.Runtime(fmt.Sprintf("pod%d", i), testutil.NewNS(t).Path, "net1")
	}
	// libcni forks from the calling thread: the plugins run in the host netns.
	inHost := func(fn func(i int) error) func(i int) error {
		return func(i int) error { return netns.Do(host.Path, func() error { return fn(i) }) }
	}
	assertNoErrors(t, "ADD", parallel(concurrency, inHost(func(i int) error {
		_, err := clients[i].Add(rts[i])
		return err
	})))
	for i := range concurrency {
		if d := k.Driver(sriovsim.VFAddr(i)); d != sriovsim.VFIODriver {
			t.Fatalf("VF %d is bound to %q after ADD, want %q", i, d, sriovsim.VFIODriver)
		}
	}
	assertNoErrors(t, "DEL", parallel(concurrency, inHost(func(i int) error { return clients[i].Del(rts[i]) })))
	k.AssertState(t, before)
}

// TestRefundKeepsMTU: a VF netdev that a pod netns renamed and gave another
// MTU comes back from the destroyed netns with that MTU (its peer keeps
// 1500), twice in a row (netns ids are reused once their netns is gone).
func TestRefundKeepsMTU(t *testing.T) {
	host := testutil.NewNS(t)
	k := sriovsim.Start(t, sriovsim.Options{VFs: 2, HostNS: host.Path})
	addr := sriovsim.VFAddr(1)
	inNS := func(path string, fn func() error) {
		t.Helper()
		if err := netns.Do(path, fn); err != nil {
			t.Fatal(err)
		}
	}
	for _, mtu := range []int{9000, 1280} {
		name := k.WaitNetdev(addr)
		pod := testutil.NewNS(t)
		fd, err := os.Open(pod.Path)
		if err != nil {
			t.Fatal(err)
		}
		inNS(host.Path, func() error {
			l, err := link.ByName(name)
			if err != nil {
				return err
			}
			return link.MoveToNetns(l, int(fd.Fd()), "net1")
		})
		fd.Close()
		inNS(pod.Path, func() error {
			l, err := link.ByName("net1")
			if err != nil {
				return err
			}
			return link.SetMTU(l, mtu)
		})
		pod.Delete()
		back := k.WaitNetdev(addr)
		inNS(host.Path, func() error {
			l, err := link.ByName(back)
			if err != nil {
				return err
			}
			if got := l.Attrs().MTU; got != mtu {
				t.Errorf("refunded netdev %q has MTU %d, want %d", back, got, mtu)
			}
			peer, err := netlink.LinkByIndex(l.Attrs().ParentIndex)
			if err != nil {
				return err
			}
			if got := peer.Attrs().MTU; got != 1500 {
				t.Errorf("peer %q has MTU %d, want 1500", peer.Attrs().Name, got)
			}
			return nil
		})
	}
	if w := k.TakeWrites(); len(w) != 0 {
		t.Fatalf("writes: %v", w)
	}
}
