package sriov_test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/pkg/link"
	"github.com/vmcni/vmcni/pkg/testutil"
	"github.com/vmcni/vmcni/sriov"
)

// The simulated PCI tree: one PF (0000:3b:00.0, netdev pfName, driver ice)
// with VFs 0000:3b:02.<i> (driver iavf, netdev = a real veth in the test's
// host netns, one IOMMU group each, 100+i), the iavf / ice / vfio-pci /
// nvme drivers with bind and unbind files, drivers_probe, /dev/vfio, and
// the fake PF table. Optionally VF 3 shares its IOMMU group with an nvme
// device, which makes that group non-viable.
const (
	pfAddr     = "0000:3b:00.0"
	nvmeAddr   = "0000:5e:00.0"
	netDriver  = "iavf"
	vfioDriver = "vfio-pci"
)

func vfAddr(i int) string { return fmt.Sprintf("0000:3b:02.%d", i) }

// vfNetdev is a VF's netdev stand-in: a veth whose peer stays in the host
// netns.
type vfNetdev struct {
	name, peer string
	mac, pmac  net.HardwareAddr
}

// simKernel is the test's stand-in for the kernel's PCI core: a goroutine
// that watches the tree's sysfs attributes (inotify IN_CLOSE_WRITE),
// records every write in order and applies what the kernel would (driver
// links, VF netdevs disappearing on unbind and reappearing on bind,
// /dev/vfio/<group> nodes).
type simKernel struct {
	t      *testing.T
	root   string
	pfName string
	hostNS string
	nVFs   int

	// mu guards writes, errs and netdevs.
	mu      sync.Mutex
	writes  []string
	errs    []string
	netdevs map[string]vfNetdev
	groups  map[string]string
	inotify *os.File
	wds     map[int]string
	done    chan struct{}
	syncSeq int
}

// newSim builds the tree with n VFs, creates the VF stand-ins in hostNS and
// starts the kernel goroutine (stopped in t.Cleanup).
func newSim(t *testing.T, hostNS string, n int, sharedGroup bool) *simKernel {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	prefix := testutil.UniqueName("vmct")[:10]
	k := &simKernel{
		t: t, root: root, pfName: prefix + "pf", hostNS: hostNS, nVFs: n,
		netdevs: map[string]vfNetdev{}, groups: map[string]string{}, wds: map[int]string{}, done: make(chan struct{}),
	}
	mkdir := func(rel string) { k.must(os.MkdirAll(k.abs(rel), 0o755)) }
	file := func(rel, content string) {
		mkdir(path.Dir(rel))
		k.must(os.WriteFile(k.abs(rel), []byte(content), 0o644))
	}
	symlink := func(target, rel string) { mkdir(path.Dir(rel)); k.must(os.Symlink(target, k.abs(rel))) }
	for _, d := range []string{netDriver, "ice", vfioDriver, "nvme"} {
		file("sys/bus/pci/drivers/"+d+"/bind", "")
		file("sys/bus/pci/drivers/"+d+"/unbind", "")
	}
	file("sys/bus/pci/drivers_probe", "")
	file("sys/.sync", "")
	file("dev/vfio/vfio", "")
	device := func(addr, driver, group string) {
		dir := "sys/bus/pci/devices/" + addr
		mkdir(dir)
		file(dir+"/driver_override", "(null)\n")
		if driver != "" {
			symlink("../../drivers/"+driver, dir+"/driver")
		}
		symlink("../../../../kernel/iommu_groups/"+group, dir+"/iommu_group")
		symlink("../../../../bus/pci/devices/"+addr, "sys/kernel/iommu_groups/"+group+"/devices/"+addr)
		k.groups[addr] = group
	}
	device(pfAddr, "ice", "10")
	mkdir("sys/bus/pci/devices/" + pfAddr + "/net/" + k.pfName)
	table := &sriov.FakePFTable{PFs: map[string][]sriov.VFState{}}
	for i := 0; i < n; i++ {
		addr := vfAddr(i)
		group := fmt.Sprint(100 + i)
		device(addr, netDriver, group)
		symlink("../"+pfAddr, "sys/bus/pci/devices/"+addr+"/physfn")
		symlink("../"+addr, fmt.Sprintf("sys/bus/pci/devices/%s/virtfn%d", pfAddr, i))
		nd := vfNetdev{name: fmt.Sprintf("%sv%d", prefix, i), peer: fmt.Sprintf("%sp%d", prefix, i),
			mac: link.RandomMAC(), pmac: link.RandomMAC()}
		k.netdevs[addr] = nd
		table.PFs[k.pfName] = append(table.PFs[k.pfName], sriov.VFState{MAC: "00:00:00:00:00:00", VlanProto: 0x8100, Spoofchk: true})
	}
	if sharedGroup {
		device(nvmeAddr, "nvme", "103")
	}
	k.must(sriov.FakePF{Path: k.abs(sriov.FakePFFile)}.Save(table))
	k.inHost(func() error {
		for i := 0; i < n; i++ {
			if err := k.createNetdev(vfAddr(i)); err != nil {
				return err
			}
		}
		return nil
	})
	k.start()
	t.Cleanup(k.stop)
	return k
}

func (k *simKernel) must(err error) {
	k.t.Helper()
	if err != nil {
		k.t.Fatal(err)
	}
}

func (k *simKernel) abs(rel string) string { return filepath.Join(k.root, filepath.FromSlash(rel)) }

// inHost runs fn on a thread inside the test's host netns.
func (k *simKernel) inHost(fn func() error) {
	k.t.Helper()
	k.must(nsDo(k.hostNS, fn))
}

func (k *simKernel) driver(addr string) string {
	target, err := os.Readlink(k.abs("sys/bus/pci/devices/" + addr + "/driver"))
	if err != nil {
		return ""
	}
	return path.Base(target)
}

func (k *simKernel) override(addr string) string {
	data, _ := os.ReadFile(k.abs("sys/bus/pci/devices/" + addr + "/driver_override"))
	v := strings.TrimSpace(string(data))
	if v == "(null)" {
		return ""
	}
	return v
}

// createNetdev makes the VF's netdev appear (thread must be in the host netns).
func (k *simKernel) createNetdev(addr string) error {
	nd := k.netdevs[addr]
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr, attrs.MTU = nd.name, nd.mac, 1500
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: nd.peer, PeerHardwareAddr: nd.pmac}); err != nil {
		return fmt.Errorf("create VF stand-in %q: %w", nd.name, err)
	}
	dir := k.abs("sys/bus/pci/devices/" + addr + "/net/" + nd.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "address"), []byte(nd.mac.String()+"\n"), 0o644)
}

// removeNetdev makes the VF's netdev disappear, as unbinding its driver does.
func (k *simKernel) removeNetdev(addr string) error {
	nd := k.netdevs[addr]
	_ = os.RemoveAll(k.abs("sys/bus/pci/devices/" + addr + "/net"))
	return link.DeleteByName(nd.name)
}

func (k *simKernel) start() {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	k.must(err)
	watch := func(rel string) {
		wd, err := unix.InotifyAddWatch(fd, k.abs(rel), unix.IN_CLOSE_WRITE)
		k.must(err)
		k.wds[wd] = rel
	}
	for _, d := range []string{netDriver, "ice", vfioDriver, "nvme"} {
		watch("sys/bus/pci/drivers/" + d + "/bind")
		watch("sys/bus/pci/drivers/" + d + "/unbind")
	}
	watch("sys/bus/pci/drivers_probe")
	watch("sys/.sync")
	for addr := range k.groups {
		watch("sys/bus/pci/devices/" + addr + "/driver_override")
	}
	k.inotify = os.NewFile(uintptr(fd), "inotify")
	ready := make(chan struct{})
	go func() {
		defer close(k.done)
		runtime.LockOSThread() // never unlocked: the thread enters the host netns and dies with us
		host, err := vnetns.GetFromPath(k.hostNS)
		if err == nil {
			err = vnetns.Set(host)
			_ = host.Close()
		}
		close(ready)
		if err != nil {
			k.fail("enter host netns: %v", err)
			return
		}
		k.loop()
	}()
	<-ready
}

func (k *simKernel) stop() {
	_ = k.inotify.Close()
	<-k.done
}

func (k *simKernel) fail(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errs = append(k.errs, fmt.Sprintf(format, args...))
}

func (k *simKernel) loop() {
	buf := make([]byte, 64*1024)
	for {
		n, err := k.inotify.Read(buf)
		if err != nil {
			return // closed
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if rel, ok := k.wds[int(ev.Wd)]; ok {
				k.handle(rel)
			}
		}
	}
}

// handle applies one completed write.
func (k *simKernel) handle(rel string) {
	data, err := os.ReadFile(k.abs(rel))
	if err != nil {
		k.fail("read %q: %v", rel, err)
		return
	}
	value := strings.TrimSpace(string(data))
	if rel == "sys/.sync" {
		k.mu.Lock()
		k.syncSeq++
		k.mu.Unlock()
		return
	}
	short := strings.TrimPrefix(rel, "sys/bus/pci/")
	k.mu.Lock()
	k.writes = append(k.writes, short+"="+value)
	k.mu.Unlock()
	drv := path.Base(path.Dir(rel))
	switch {
	case strings.HasSuffix(rel, "/unbind"):
		if got := k.driver(value); got != drv {
			k.fail("unbind %q from %q: bound to %q (ENODEV)", value, drv, got)
			return
		}
		k.unbind(value, drv)
	case strings.HasSuffix(rel, "/bind"):
		if got := k.driver(value); got != "" {
			k.fail("bind %q to %q: already bound to %q (EBUSY)", value, drv, got)
			return
		}
		if o := k.override(value); o != "" && o != drv {
			k.fail("bind %q to %q: driver_override is %q", value, drv, o)
			return
		}
		k.bind(value, drv)
	case rel == "sys/bus/pci/drivers_probe":
		if k.driver(value) != "" {
			return
		}
		target := k.override(value)
		if target == "" {
			target = netDriver // the id table match of every VF here
		}
		k.bind(value, target)
	}
}

func (k *simKernel) unbind(addr, drv string) {
	_ = os.Remove(k.abs("sys/bus/pci/devices/" + addr + "/driver"))
	switch drv {
	case netDriver:
		if err := k.removeNetdev(addr); err != nil {
			k.fail("remove netdev of %q: %v", addr, err)
		}
	case vfioDriver:
		group := k.groups[addr]
		for other, g := range k.groups {
			if g == group && k.driver(other) == vfioDriver {
				return
			}
		}
		_ = os.Remove(k.abs("dev/vfio/" + group))
	}
}

func (k *simKernel) bind(addr, drv string) {
	if err := os.Symlink("../../drivers/"+drv, k.abs("sys/bus/pci/devices/"+addr+"/driver")); err != nil {
		k.fail("bind %q: %v", addr, err)
		return
	}
	switch drv {
	case netDriver:
		if err := k.createNetdev(addr); err != nil {
			k.fail("netdev of %q: %v", addr, err)
		}
	case vfioDriver:
		if err := os.WriteFile(k.abs("dev/vfio/"+k.groups[addr]), nil, 0o600); err != nil {
			k.fail("vfio node: %v", err)
		}
	}
}

// sync waits until the kernel goroutine has handled every write made so far.
func (k *simKernel) sync() {
	k.t.Helper()
	k.mu.Lock()
	want := k.syncSeq + 1
	k.mu.Unlock()
	k.must(os.WriteFile(k.abs("sys/.sync"), []byte("x"), 0o644))
	deadline := time.Now().Add(5 * time.Second)
	for {
		k.mu.Lock()
		got := k.syncSeq
		k.mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatal("simulated kernel did not catch up")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// takeWrites returns and clears the writes recorded so far, and fails the
// test on any write the kernel would have refused.
func (k *simKernel) takeWrites() []string {
	k.t.Helper()
	k.sync()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.errs) > 0 {
		k.t.Fatalf("simulated kernel refused writes: %v", k.errs)
	}
	w := k.writes
	k.writes = nil
	return w
}

// fakePF is the fake PF table of the tree.
func (k *simKernel) fakePF() sriov.FakePF { return sriov.FakePF{Path: k.abs(sriov.FakePFFile)} }

// vf returns VF i's PF-side settings.
func (k *simKernel) vf(i int) sriov.VFState {
	k.t.Helper()
	tbl, err := k.fakePF().Load()
	k.must(err)
	return tbl.PFs[k.pfName][i]
}

// takeCalls returns and clears the PF-side calls recorded so far.
func (k *simKernel) takeCalls() []string {
	k.t.Helper()
	f := k.fakePF()
	tbl, err := f.Load()
	k.must(err)
	calls := tbl.Calls
	tbl.Calls = nil
	k.must(f.Save(tbl))
	return calls
}

// state describes everything the plugin may change on the simulated host:
// drivers, overrides, VF netdevs in the tree, /dev/vfio nodes and the PF
// table (calls excluded).
func (k *simKernel) state() string {
	k.t.Helper()
	k.sync()
	var lines []string
	for addr := range k.groups {
		names, _ := os.ReadDir(k.abs("sys/bus/pci/devices/" + addr + "/net"))
		var nets []string
		for _, n := range names {
			nets = append(nets, n.Name())
		}
		lines = append(lines, fmt.Sprintf("%s driver=%q override=%q net=%v", addr, k.driver(addr), k.override(addr), nets))
	}
	nodes, _ := os.ReadDir(k.abs("dev/vfio"))
	for _, n := range nodes {
		lines = append(lines, "dev/vfio/"+n.Name())
	}
	tbl, err := k.fakePF().Load()
	k.must(err)
	for i, v := range tbl.PFs[k.pfName] {
		lines = append(lines, fmt.Sprintf("vf %d %+v", i, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// assertState fails the test when the simulated host differs from before.
func (k *simKernel) assertState(before string) {
	k.t.Helper()
	if now := k.state(); now != before {
		k.t.Fatalf("simulated host changed:\n--- before\n%s\n--- after\n%s", before, now)
	}
}
