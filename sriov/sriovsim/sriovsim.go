// Package sriovsim simulates an SR-IOV host for vm-sriov on machines without
// SR-IOV hardware. It is a test helper (it imports testing): the sriov
// package's tests and the conformance suite run vm-sriov, in process or as
// the real binary, against it. It needs root (it creates links).
//
// # What it simulates
//
// Start builds a tree under t.TempDir() (Kernel.Root, vm-sriov's sysfsRoot)
// and runs a goroutine standing in for the kernel's PCI core and netdev
// layer, on a thread in the host netns (Options.HostNS):
//
//   - A PF, PFAddr (0000:3b:00.0), bound to ice, whose netdev is
//     Kernel.PFName (a sysfs entry only, no link), with VFs VFAddr(i) =
//     0000:3b:02.<i> (virtfn<i> and physfn links), each bound to NetDriver
//     (iavf), alone in IOMMU group 100+i. With Options.SharedGroup an nvme
//     device, NVMeAddr, is in group 103 too, which makes VF 3's group
//     non-viable for VFIO.
//   - Drivers iavf, ice, vfio-pci and nvme with bind and unbind files,
//     drivers_probe and each device's driver_override, acted on as the
//     kernel does once the write completes (see Sysfs attributes): unbind
//     drops the driver link, bind adds it (refusing a bound device, EBUSY,
//     or one whose override names another driver), drivers_probe binds an
//     unbound device to its override, else to iavf. Binding a device to vfio-pci creates
//     dev/vfio/<group>; unbinding the group's last vfio-pci device removes
//     it. dev/vfio/vfio exists. Refused writes fail the test at the next
//     TakeWrites.
//   - A netdev for each VF bound to iavf: a veth whose VF side (first named
//     <prefix>v<i>) is the VF's netdev and whose peer (<prefix>p<i>) stays
//     in the host netns, listed with its MAC in the VF's
//     sys/bus/pci/devices/<vf>/net/<name>/address. Unbinding iavf destroys
//     it wherever it is; binding creates it again. A rename of the VF
//     netdev in the host netns renames its net/ entry.
//   - Netns refund: a network namespace being destroyed returns physical
//     netdevs to the init netns instead of deleting them (the kernel's
//     netns_refund). A veth dies with its netns, peer included, so when a
//     peer disappears without the simulator removing it, the simulator
//     recreates the pair in the host netns, the VF side under a new name
//     (<prefix>r<i>, as the kernel falls back to dev%d on a name clash) and
//     with the MTU it had in the pod netns, and moves the VF's net/ entry
//     to it. To know that MTU, the kernel goroutine listens to the link
//     events of every netns that has an id in the host netns
//     (NETLINK_LISTEN_ALL_NSID; moving a link to a netns gives it one),
//     which holds no reference to them, and follows the VF side's MTU in
//     the netns it went to. Netns destruction is asynchronous: WaitNetdev
//     waits for the refund.
//   - The PF's VF table, FakePFFile: FakePF, the PF side of netlink, which
//     tests inject into vm-sriov (VFControllerFor; the vm-sriov-sim binary).
//
// # Sysfs attributes
//
// The attributes every process writes to, each drivers/<drv>/bind and
// unbind and drivers_probe, are named pipes (mode 0200, write-only as in
// sysfs) that the kernel goroutine holds open for reading and writing: a
// writer (os.OpenFile O_WRONLY|O_TRUNC, one write, close, as
// sriov.RootFS.WriteFile does) never blocks, and every write is acted on,
// also when several processes write the same attribute at once (the
// kernel handles each write() on its own). A write of one value is atomic
// (under PIPE_BUF), but the pipe concatenates writes, so the simulator
// splits what it reads into values at whitespace and around PCI addresses
// (dddd:bb:dd.f): write one PCI address per write, with or without a
// trailing newline. Nothing may read these files: a read blocks while the
// pipe is empty and takes the values it gets away from the simulator.
//
// A device's driver_override has one writer (vm-sriov, for the VF it
// owns) and is read back, so it stays a regular file, watched with
// inotify (IN_CLOSE_WRITE) and re-read once written. Writes are applied
// in the order they were made as far as vm-sriov can observe it: a
// driver_override written before a bind, unbind or drivers_probe is
// applied before it (vm-sriov waits for the outcome of each of those
// before its next write). TakeWrites, State and WaitNetdev first apply
// every write made before they were called.
//
// <prefix> is unique per Start ("vmct" and random hex), so concurrent test
// runs never share names. t.Cleanup stops the goroutine and deletes every
// link the simulator created.
//
// # Differences from a real kernel
//
// sysfs writes take effect shortly after they return (vm-sriov polls for
// the outcome, as it must for asynchronous probing), and a refused write
// does not fail: it fails the test at the next TakeWrites. bind, unbind
// and drivers_probe are named pipes, not regular files (see Sysfs
// attributes). A VF's net/ directory keeps listing its netdev's last host
// name while the netdev is in another netns (a real sysfs shows only the
// netdevs of its mount's netns). A refunded netdev always gets a new name
// and the stand-in's original MACs, and is down (the kernel keeps the name
// when it is free, and the MAC the pod gave it). It keeps the MTU it had
// in the pod netns, as the kernel does, but only as far as the simulator
// saw it: after a move from one pod netns straight to another, an MTU set
// there before the simulator handles the move can be missed, and after
// lost link events (a full socket buffer, which also fails the test) it
// is the last one seen.
package sriovsim

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
)

// The simulated devices and drivers.
const (
	// PFAddr is the PF's PCI address.
	PFAddr = "0000:3b:00.0"
	// NVMeAddr is the nvme device sharing VF 3's IOMMU group
	// (Options.SharedGroup).
	NVMeAddr = "0000:5e:00.0"
	// NetDriver is the VFs' network driver, which drivers_probe picks.
	NetDriver = "iavf"
	// VFIODriver is the VFIO driver.
	VFIODriver = sriov.VFIODriver
	pfDriver   = "ice"
	nvmeDriver = "nvme"
)

var drivers = []string{NetDriver, pfDriver, VFIODriver, nvmeDriver}

// VFAddr is the PCI address of VF i.
func VFAddr(i int) string { return fmt.Sprintf("0000:3b:02.%d", i) }

// maxVFs keeps <prefix>r<i> within IFNAMSIZ.
const maxVFs = 1000

// Options describe the simulated host.
type Options struct {
	// VFs is the number of VFs (at most 1000).
	VFs int
	// SharedGroup puts an nvme device (NVMeAddr, bound to nvme) in VF 3's
	// IOMMU group.
	SharedGroup bool
	// HostNS is the path of the netns where the VF netdevs live and the
	// kernel goroutine runs, the simulated init netns; "" is the netns of
	// the thread calling Start.
	HostNS string
}

// Kernel is a running simulated host. Its methods fail the test given to
// Start, so call them from that test's goroutine.
type Kernel struct {
	// Root is the simulated tree: vm-sriov's sysfsRoot.
	Root string
	// PFName is the PF's netdev name, the key of the FakePF table.
	PFName string

	t      testing.TB
	prefix string
	host   vnetns.NsHandle
	groups map[string]string // PCI address -> IOMMU group; fixed at Start
	wds    map[int]string    // inotify watch -> watched driver_override; fixed at Start

	// mu guards writes, errs, stopped and the fields of every netdev in
	// netdevs (the map itself is fixed at Start).
	mu      sync.Mutex
	writes  []string
	errs    []string
	stopped bool
	netdevs map[string]*netdev // VF PCI address -> its netdev stand-in

	// started, polling and subscribed say what stop must wait for; set
	// before the kernel goroutine (the poller) starts and before the
	// kernel goroutine closes done.
	started, polling, subscribed bool

	// inotify (-1 when not open) and the pipes of shared are read by the
	// kernel goroutine only (drain); stop closes them once it and the
	// poller are gone.
	inotify int
	shared  []*sharedAttr

	// sock is the link event socket, set with subscribed; stop closes it.
	sock *linkSocket

	kick     chan struct{}  // "readable", from the poller
	pollDone chan struct{}  // closed when the poller is gone
	links    chan linkMsg   // the link events of the host netns and the netns with an id in it
	queries  chan chan bool // "settled?", answered by the kernel goroutine
	quit     chan struct{}  // closing it stops the kernel goroutine
	done     chan struct{}  // closed when the kernel goroutine is gone
}

// Start builds the tree, creates the VF netdevs in o.HostNS, starts the
// kernel goroutine and registers their removal with t.Cleanup.
func Start(t testing.TB, o Options) *Kernel {
	t.Helper()
	testutil.RequiresRoot(t)
	if o.VFs < 0 || o.VFs > maxVFs {
		t.Fatalf("sriovsim: %d VFs, want 0 to %d", o.VFs, maxVFs)
	}
	host, err := openHost(o.HostNS)
	if err != nil {
		t.Fatalf("sriovsim: %v", err)
	}
	prefix := testutil.UniqueName("vmct")[:10]
	k := &Kernel{
		Root: filepath.Join(t.TempDir(), "root"), PFName: prefix + "pf",
		t: t, prefix: prefix, host: host, groups: map[string]string{}, wds: map[int]string{},
		netdevs: map[string]*netdev{},
		inotify: -1, kick: make(chan struct{}), pollDone: make(chan struct{}), links: make(chan linkMsg, 256),
		queries: make(chan chan bool), quit: make(chan struct{}), done: make(chan struct{}),
	}
	t.Cleanup(k.stop)
	k.build(o)
	k.start()
	return k
}

func openHost(path string) (vnetns.NsHandle, error) {
	if path == "" {
		h, err := vnetns.Get()
		if err != nil {
			return h, fmt.Errorf("open the calling thread's netns: %w", err)
		}
		return h, nil
	}
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return h, fmt.Errorf("open host netns %q: %w", path, err)
	}
	return h, nil
}

func (k *Kernel) must(err error) {
	k.t.Helper()
	if err != nil {
		k.t.Fatalf("sriovsim: %v", err)
	}
}

// build writes the tree.
func (k *Kernel) build(o Options) {
	mkdir := func(rel string) { k.must(os.MkdirAll(k.Abs(rel), 0o755)) }
	file := func(rel, content string) {
		mkdir(path.Dir(rel))
		k.must(os.WriteFile(k.Abs(rel), []byte(content), 0o644))
	}
	symlink := func(target, rel string) { mkdir(path.Dir(rel)); k.must(os.Symlink(target, k.Abs(rel))) }
	for _, rel := range sharedAttrs() {
		mkdir(path.Dir(rel))
		// Write-only, as in sysfs: a reader would take writers' values.
		k.must(unix.Mkfifo(k.Abs(rel), 0o200))
	}
	file("dev/vfio/vfio", "")
	device := func(addr, driver, group string) {
		dir := devDir(addr)
		mkdir(dir)
		file(dir+"/driver_override", "(null)\n")
		if driver != "" {
			symlink("../../drivers/"+driver, dir+"/driver")
		}
		symlink("../../../../kernel/iommu_groups/"+group, dir+"/iommu_group")
		symlink("../../../../bus/pci/devices/"+addr, "sys/kernel/iommu_groups/"+group+"/devices/"+addr)
		k.groups[addr] = group
	}
	device(PFAddr, pfDriver, "10")
	mkdir(devDir(PFAddr) + "/net/" + k.PFName)
	table := &FakePFTable{PFs: map[string][]sriov.VFState{k.PFName: {}}}
	for i := 0; i < o.VFs; i++ {
		addr := VFAddr(i)
		device(addr, NetDriver, fmt.Sprint(100+i))
		symlink("../"+PFAddr, devDir(addr)+"/physfn")
		symlink("../"+addr, fmt.Sprintf("%s/virtfn%d", devDir(PFAddr), i))
		k.netdevs[addr] = &netdev{vf: i, name: fmt.Sprintf("%sv%d", k.prefix, i), peer: fmt.Sprintf("%sp%d", k.prefix, i),
			mac: link.RandomMAC(), peerMAC: link.RandomMAC(), nsid: -1}
		table.PFs[k.PFName] = append(table.PFs[k.PFName], sriov.VFState{MAC: "00:00:00:00:00:00", VlanProto: 0x8100, Spoofchk: true})
	}
	if o.SharedGroup {
		device(NVMeAddr, nvmeDriver, "103")
	}
	k.must(k.fakePF().Save(table))
}

func devDir(addr string) string { return "sys/bus/pci/devices/" + addr }

// Abs is the host path of rel (slash-separated, relative to Root).
func (k *Kernel) Abs(rel string) string { return filepath.Join(k.Root, filepath.FromSlash(rel)) }

// Driver is the driver addr is bound to, "" when unbound.
func (k *Kernel) Driver(addr string) string {
	target, err := os.Readlink(k.Abs(devDir(addr) + "/driver"))
	if err != nil {
		return ""
	}
	return path.Base(target)
}

func (k *Kernel) override(addr string) string {
	data, _ := os.ReadFile(k.Abs(devDir(addr) + "/driver_override"))
	v := strings.TrimSpace(string(data))
	if v == "(null)" {
		return ""
	}
	return v
}

// Netdev returns the name VF addr's netdev has in its net/ directory ("" when
// the VF has none: not bound to iavf) and the netdev stand-in's original MAC.
func (k *Kernel) Netdev(addr string) (name string, mac net.HardwareAddr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	nd, ok := k.netdevs[addr]
	if !ok {
		return "", nil
	}
	return nd.cur, nd.mac
}

func (k *Kernel) fail(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.errs = append(k.errs, fmt.Sprintf(format, args...))
	}
}

func (k *Kernel) takeErrs() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	errs := k.errs
	k.errs = nil
	return errs
}

// settleTimeout bounds every wait for the kernel goroutine.
const settleTimeout = 10 * time.Second

// sync waits until the kernel goroutine has handled every write made so far
// (each settled query drains them all first) and every link event the host
// netns has sent so far.
func (k *Kernel) sync() {
	k.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		if k.settled() {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("sriovsim: the simulated kernel did not catch up within %s (errors: %v)", settleTimeout, k.takeErrs())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled has the kernel goroutine apply every write made so far, and asks
// it whether its view of the VF netdevs matches the host netns's links.
func (k *Kernel) settled() bool {
	reply := make(chan bool, 1)
	select {
	case k.queries <- reply:
	case <-k.done:
		k.t.Fatal("sriovsim: the simulated kernel has stopped")
	}
	return <-reply
}

// WaitNetdev waits until VF addr's netdev is in the host netns (after a
// refund, for one: destroying a netns is asynchronous) and the simulator
// has caught up, and returns its name.
func (k *Kernel) WaitNetdev(addr string) string {
	k.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		k.sync()
		k.mu.Lock()
		nd, ok := k.netdevs[addr]
		var name string
		home := ok && nd.home
		if home {
			name = nd.cur
		}
		k.mu.Unlock()
		if !ok {
			k.t.Fatalf("sriovsim: no VF %q", addr)
		}
		if home {
			return name
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("sriovsim: the netdev of VF %q did not come back to the host netns within %s (errors: %v)", addr, settleTimeout, k.takeErrs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TakeWrites returns and clears the sysfs writes made so far, in order, as
// "<path under sys/bus/pci>=<value>", and fails the test on any write the
// kernel would have refused.
func (k *Kernel) TakeWrites() []string {
	k.t.Helper()
	k.sync()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.errs) > 0 {
		k.t.Fatalf("sriovsim: the simulated kernel refused: %v", k.errs)
	}
	w := k.writes
	k.writes = nil
	return w
}

func (k *Kernel) fakePF() FakePF { return FakePF{Path: k.Abs(FakePFFile)} }

// VF returns VF i's PF-side settings.
func (k *Kernel) VF(i int) sriov.VFState {
	k.t.Helper()
	tbl, err := k.fakePF().Load()
	k.must(err)
	return tbl.PFs[k.PFName][i]
}

// TakeCalls returns and clears the PF-side calls made so far, in order (see
// FakePFTable.Calls).
func (k *Kernel) TakeCalls() []string {
	k.t.Helper()
	f := k.fakePF()
	tbl, err := f.Load()
	k.must(err)
	calls := tbl.Calls
	tbl.Calls = nil
	k.must(f.Save(tbl))
	return calls
}

// State describes everything vm-sriov may change on the simulated host,
// once the simulator has caught up: each device's driver, driver_override
// and net/ entries, the /dev/vfio nodes and the PF-side VF settings (not
// the calls).
func (k *Kernel) State() string {
	k.t.Helper()
	k.sync()
	var lines []string
	for addr := range k.groups {
		names, _ := os.ReadDir(k.Abs(devDir(addr) + "/net"))
		var nets []string
		for _, n := range names {
			nets = append(nets, n.Name())
		}
		lines = append(lines, fmt.Sprintf("%s driver=%q override=%q net=%v", addr, k.Driver(addr), k.override(addr), nets))
	}
	nodes, _ := os.ReadDir(k.Abs("dev/vfio"))
	for _, n := range nodes {
		lines = append(lines, "dev/vfio/"+n.Name())
	}
	tbl, err := k.fakePF().Load()
	k.must(err)
	for i, v := range tbl.PFs[k.PFName] {
		lines = append(lines, fmt.Sprintf("vf %d %+v", i, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// AssertState fails t when the simulated host's State differs from before.
func (k *Kernel) AssertState(t testing.TB, before string) {
	t.Helper()
	if now := k.State(); now != before {
		t.Fatalf("simulated host changed:\n--- before\n%s\n--- after\n%s", before, now)
	}
}
