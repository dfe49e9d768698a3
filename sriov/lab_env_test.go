package sriov_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/hostsnap"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/internal/testutil/devlab"
	"github.com/vmcni/vmcni/sriov"
)

// The TestLab* tests run on the real kernel's SR-IOV and VFIO, inside the
// device lab guest (package devlab): an igb 82576 PF with 7 VFs on igbvf,
// vfio-pci and an Intel IOMMU. On the host, TestDeviceLab builds this
// package's tests, vm-sriov, host-local and vmcni-conformance, boots the
// lab and replays each TestLab* test's verdict; the TestLab* tests skip
// themselves anywhere else.
//
// In the guest the tests own the machine: the host netns is the guest's
// init netns, vm-sriov runs with sysfsRoot "/" and the kernel's netlink,
// and each test leaves every VF as it found it.

// TestDeviceLab runs the TestLab* tests in the device lab.
func TestDeviceLab(t *testing.T) {
	if devlab.InGuest() {
		t.Skip("the lab's driver runs on the host")
	}
	l := devlab.Require(t)
	testBin := devlab.BuildTest(t, "./sriov")
	bins := devlab.BuildCommands(t, "./plugins/vm-sriov", "./conformance/cmd/vmcni-conformance",
		"github.com/containernetworking/plugins/plugins/ipam/host-local")
	l.GoTests(t, testBin, "^TestLab", devlab.Dir(t, bins, "bin"))
}

// labVF is one VF of the lab's PF as the kernel showed it at the start.
type labVF struct {
	Index  int
	PCI    string
	Netdev string
	Group  string
}

// labEnv is a lab test's view of the real machine.
type labEnv struct {
	t        *testing.T
	bin      string
	pf       string
	vfs      []labVF
	stateDir string
	ipamDir  string
	subnet   string
}

var labSubnets = testutil.NewSubnets(60)

func newLab(t *testing.T) *labEnv {
	t.Helper()
	if !devlab.InGuest() {
		t.Skip("runs in the device lab guest (TestDeviceLab boots it)")
	}
	dir := t.TempDir()
	e := &labEnv{
		t: t, bin: testutil.Binaries(t), pf: os.Getenv("VMCNI_LAB_PF"),
		stateDir: filepath.Join(dir, "state"), ipamDir: filepath.Join(dir, "ipam"), subnet: labSubnets.Next(),
	}
	pfDir := filepath.Join("/sys/bus/pci/devices", os.Getenv("VMCNI_LAB_PF_PCI"))
	links, _ := filepath.Glob(filepath.Join(pfDir, "virtfn*"))
	for _, l := range links {
		var vf labVF
		if _, err := fmt.Sscanf(filepath.Base(l), "virtfn%d", &vf.Index); err != nil {
			t.Fatal(err)
		}
		vf.PCI = linkBase(l)
		vf.Group = linkBase(filepath.Join(l, "iommu_group"))
		if names, _ := os.ReadDir(filepath.Join(l, "net")); len(names) == 1 {
			vf.Netdev = names[0].Name()
		}
		e.vfs = append(e.vfs, vf)
	}
	sort.Slice(e.vfs, func(i, j int) bool { return e.vfs[i].Index < e.vfs[j].Index })
	if e.pf == "" || len(e.vfs) == 0 {
		t.Fatalf("lab: PF %q with %d VFs", e.pf, len(e.vfs))
	}
	return e
}

func linkBase(p string) string {
	target, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// vfLines is what the kernel says about each VF: its PF-side settings
// (netlink), driver, driver_override and netdev (name, MAC, MTU, up) in
// this netns.
func (e *labEnv) vfLines(t testing.TB) []string {
	var lines []string
	for _, vf := range e.vfs {
		dev := filepath.Join("/sys/bus/pci/devices", vf.PCI)
		st, err := sriov.KernelVFs.VF(e.pf, vf.Index)
		if err != nil {
			t.Fatal(err)
		}
		override, _ := os.ReadFile(filepath.Join(dev, "driver_override"))
		names, _ := os.ReadDir(filepath.Join(dev, "net"))
		var netdevs []string
		for _, n := range names {
			netdevs = append(netdevs, n.Name())
			// igb reports the VF's MAC filter, which the VF driver sets
			// itself (to its netdev's MAC) where the PF holds no
			// administrative MAC: both read as "unset". assertOwnsMAC
			// checks that the VF can still change it after DEL.
			if l, err := link.ByName(n.Name()); err == nil && sriov.SameMAC(st.MAC, l.Attrs().HardwareAddr.String()) {
				st.MAC = unsetMAC
			}
		}
		if st.MAC == unsetMAC {
			st.MAC = "unset"
		}
		js, _ := json.Marshal(st)
		lines = append(lines, fmt.Sprintf("vf %d %s pf-side=%s driver=%s override=%s netdevs=%v",
			vf.Index, vf.PCI, js, linkBase(filepath.Join(dev, "driver")), strings.TrimSpace(string(override)), netdevs))
	}
	return lines
}

const unsetMAC = "00:00:00:00:00:00"

// state is the host netns (links, addresses, routes, qdiscs), the state
// and IPAM directories, and every VF as the kernel reports it.
func (e *labEnv) state(t testing.TB) testutil.Snapshot {
	t.Helper()
	s := testutil.TakeSnapshot(t, []string{e.stateDir, e.ipamDir})
	s.Lines = append(s.Lines, e.vfLines(t)...)
	sort.Strings(s.Lines)
	return s
}

// assertState fails the test when the machine differs from before.
func (e *labEnv) assertState(t testing.TB, before testutil.Snapshot, when string) {
	t.Helper()
	if diff := hostsnap.Diff(before, e.state(t)); len(diff) > 0 {
		t.Fatalf("%s: machine changed:\n%s", when, strings.Join(diff, "\n"))
	}
}

func (e *labEnv) ipam() map[string]any {
	return map[string]any{"type": "host-local", "dataDir": e.ipamDir, "ranges": [][]map[string]string{{{"subnet": e.subnet}}}}
}

// conf is a vm-sriov config for vf (nil: no deviceID) on the real sysfs.
func (e *labEnv) conf(mode string, vf *labVF, extra map[string]any) map[string]any {
	c := map[string]any{
		"type": sriov.PluginName, "mode": mode, "sysfsRoot": "/", "stateDir": e.stateDir,
		"bindTimeout": "20s", "ipam": e.ipam(),
	}
	if vf != nil {
		c["deviceID"] = vf.PCI
	}
	return merged(c, extra)
}

// cni drives the built vm-sriov binary through libcni.
func (e *labEnv) cni(plugin map[string]any) *testutil.CNI {
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "vmct-lab", "plugins": []any{plugin}})
	return testutil.NewCNI(e.t, e.bin, data)
}

// igbKnobs sets every PF-side setting igb implements away from its
// default (igb has no link_state and no min_tx_rate, and takes 802.1Q
// only: see TestLabRefusedKnobs).
func igbKnobs(extra map[string]any) map[string]any {
	return merged(map[string]any{"mac": "02:11:22:33:44:55", "vlan": 100, "vlanQoS": 3, "spoofchk": "off", "trust": "on", "max_tx_rate": 500}, extra)
}

// wantIgbKnobs is what the kernel reports for a VF after igbKnobs.
var wantIgbKnobs = sriov.VFState{MAC: "02:11:22:33:44:55", Vlan: 100, QoS: 3, VlanProto: 0x8100, Trust: true, MaxTxRate: 500}

// assertVF fails the test unless the kernel reports want for vf.
func (e *labEnv) assertVF(vf labVF, want sriov.VFState) {
	e.t.Helper()
	got, err := sriov.KernelVFs.VF(e.pf, vf.Index)
	if err != nil {
		e.t.Fatal(err)
	}
	got.VlanProto = normalProto(got.VlanProto)
	if got != want {
		e.t.Fatalf("VF %d as the kernel reports it:\n got  %+v\n want %+v", vf.Index, got, want)
	}
}

func normalProto(p uint16) uint16 {
	if p == 0 {
		return 0x8100
	}
	return p
}

// driver is the VF's driver as sysfs shows it.
func driver(vf labVF) string {
	return linkBase(filepath.Join("/sys/bus/pci/devices", vf.PCI, "driver"))
}

// waitCarrier waits until link name in the netns at nsPath has carrier
// (igbvf reports it once the PF answered its mailbox) and returns the
// time it took.
func waitCarrier(t *testing.T, nsPath, name string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		var up bool
		if err := nsDo(nsPath, func() error {
			l, err := link.ByName(name)
			up = err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if up {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s in %s: no carrier after %s", name, nsPath, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertOwnsMAC fails the test unless vf's driver can change its netdev's
// MAC, which igb refuses while the PF holds an administrative MAC for the
// VF: DEL must not leave one behind. The MAC is put back.
func (e *labEnv) assertOwnsMAC(vf labVF) {
	e.t.Helper()
	l, err := link.ByName(vf.Netdev)
	if err != nil {
		e.t.Fatal(err)
	}
	orig := l.Attrs().HardwareAddr
	probe, _ := net.ParseMAC("02:00:00:00:99:99")
	if err := netlink.LinkSetHardwareAddr(l, probe); err != nil {
		e.t.Fatalf("VF %d cannot change its MAC after DEL (an administrative MAC left on the PF?): %v", vf.Index, err)
	}
	if err := netlink.LinkSetHardwareAddr(l, orig); err != nil {
		e.t.Fatal(err)
	}
}

// gatewayOnPF puts the first address of the test's subnet (host-local's
// default gateway) on the PF, and returns it with its removal (also run
// at cleanup).
func (e *labEnv) gatewayOnPF(t *testing.T) (*net.IPNet, func() error) {
	t.Helper()
	_, subnet, err := net.ParseCIDR(e.subnet)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.IPNet{IP: append(net.IP(nil), subnet.IP.To4()...), Mask: subnet.Mask}
	addr.IP[3] = 1
	pf, err := link.ByName(e.pf)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(pf, &netlink.Addr{IPNet: addr}); err != nil {
		t.Fatal(err)
	}
	removed := false
	remove := func() error {
		if removed {
			return nil
		}
		removed = true
		return netlink.AddrDel(pf, &netlink.Addr{IPNet: addr})
	}
	t.Cleanup(func() { _ = remove() })
	return addr, remove
}
