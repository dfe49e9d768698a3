package vhostuser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vmnet/launcher"
)

// guestImage returns the test guest (make guest); skips with the reason
// when absent and VMCNI_GUEST_DIR is unset.
func guestImage(t *testing.T) (string, string) {
	t.Helper()
	dir := os.Getenv("VMCNI_GUEST_DIR")
	required := dir != ""
	if dir == "" {
		dir = "/var/cache/vmcni/guest"
	}
	k, i := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initramfs.cpio.gz")
	if !testutil.FileExists(k) || !testutil.FileExists(i) {
		if required {
			t.Fatalf("no guest image in %s", dir)
		}
		t.Skipf("skipped: no guest image in %s; run make guest", dir)
	}
	return k, i
}

// hostPort plugs a veth into the OVS bridge and gives its host end addr:
// the host side of the tests' traffic. TCP needs TX checksum offload off on
// it (OVS's userspace datapath does not complete partial checksums).
func hostPort(t *testing.T, ovs *testutil.OVS, bridge, addr string) string {
	t.Helper()
	host, peer := testutil.UniqueName("vmcth"), testutil.UniqueName("vmcto")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = host
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.DeleteByName(host) })
	for _, name := range []string{host, peer} {
		l, err := link.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := link.SetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := link.ByName(host)
	ipnet, _ := netlink.ParseIPNet(addr)
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
		t.Fatal(err)
	}
	if et, err := ethtool.NewEthtool(); err == nil {
		_ = et.Change(host, map[string]bool{"tx-checksum-ip-generic": false})
		et.Close()
	}
	ovs.Vsctl("add-port", bridge, peer)
	return host
}

func serveHTTP(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello from the host\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func conflist(t *testing.T, plugin map[string]any) []byte {
	t.Helper()
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "vmct-vhu", "plugins": []map[string]any{plugin}})
	return data
}

func hostLocal(dir, subnet, start string) map[string]any {
	return map[string]any{
		"type": "host-local", "dataDir": filepath.Join(dir, "ipam"),
		"ranges": [][]map[string]string{{{"subnet": subnet, "rangeStart": start}}},
	}
}

func ping(t *testing.T, ip net.IP, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if _, err := launcher.Ping(ctx, ip); err != nil {
		t.Fatalf("ping %s: %v", ip, err)
	}
}

func httpGet(t *testing.T, url, want string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var last error
	for i := 0; i < 5; i++ {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return
			}
			err = fmt.Errorf("body %q", body)
		}
		last = err
		time.Sleep(time.Second)
	}
	t.Fatalf("GET %s: %v", url, last)
}

func waitConsole(t *testing.T, s *launcher.Session, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := s.WaitConsole(ctx, marker); err != nil {
		t.Fatalf("%s: %v", marker, err)
	}
}

// ovsNet is a vm-vhostuser network on a bridge of a private OVS-DPDK,
// with a host port <net>.1/24 serving HTTP on port.
type ovsNet struct {
	ovs     *testutil.OVS
	conf    []byte
	port    int
	sockDir string
}

// newOVSNet starts OVS-DPDK and returns the network on <net>.0/24 (guests
// from <net>.10), its plugin config completed with extra.
func newOVSNet(t *testing.T, net string, extra map[string]any) ovsNet {
	t.Helper()
	testutil.RequiresOVSDPDK(t)
	o := ovsNet{ovs: testutil.StartOVS(t)}
	bridge := testutil.UniqueName("vmctbr")
	o.ovs.AddBridge(bridge)
	hostPort(t, o.ovs, bridge, net+".1/24")
	o.port = serveHTTP(t, net+".1")
	dir := t.TempDir()
	o.sockDir, _ = os.MkdirTemp("/tmp", "vmct-vhu")
	t.Cleanup(func() { _ = os.RemoveAll(o.sockDir) })
	plugin := map[string]any{
		"type": "vm-vhostuser", "backend": "ovs-dpdk", "bridge": bridge, "ovsdb": o.ovs.DB,
		"socketDir": o.sockDir, "stateDir": filepath.Join(dir, "state"),
		"ipam": hostLocal(dir, net+".0/24", net+".10"),
	}
	for k, v := range extra {
		plugin[k] = v
	}
	o.conf = conflist(t, plugin)
	return o
}

// TestOVSDPDKGuests boots two guests on vm-vhostuser ports of one real
// OVS-DPDK bridge: each exchanges ping and TCP with a host port on the same
// bridge, the second reaches the first, and after an OVS restart traffic to
// the first resumes (OVS reconnects as vhost-user client). DEL leaves no
// port, socket or directory.
func TestOVSDPDKGuests(t *testing.T) {
	kernel, initrd := guestImage(t)
	bin := testutil.Binaries(t)
	o := newOVSNet(t, "10.196.0", map[string]any{"mtu": 1500})
	ovs, conf, port, sockDir := o.ovs, o.conf, o.port, o.sockDir
	start := func(extra string, probe bool) *launcher.Session {
		s, err := launcher.Start(context.Background(), launcher.Options{
			Conflist: conf, CNIPath: []string{bin}, Kernel: kernel, Initrd: initrd,
			BootTimeout: 90 * time.Second, ExtraCmdline: extra, ProbeGateway: probe,
			ProbeTCP: map[bool]string{true: fmt.Sprintf("10.196.0.1:%d", port)}[probe],
		})
		if err != nil {
			t.Fatalf("start guest: %v", err)
		}
		return s
	}
	first := start("", true)
	defer first.Close()
	ip1 := first.GuestIP(false)
	t.Logf("guest 1 %s up in %.1fs", ip1, first.BootTime.Seconds())
	ping(t, ip1, 30*time.Second)
	httpGet(t, fmt.Sprintf("http://%s:8080/", ip1), "vmcni-guest-ok")
	waitConsole(t, first, "VMCNI-PROBE-OK")
	waitConsole(t, first, "VMCNI-PROBETCP-OK")

	second := start("vmcni.probe="+ip1.String(), false)
	t.Logf("guest 2 %s up in %.1fs", second.GuestIP(false), second.BootTime.Seconds())
	waitConsole(t, second, "VMCNI-PROBE-OK "+ip1.String())
	ping(t, second.GuestIP(false), 30*time.Second)
	if err := second.Close(); err != nil {
		t.Fatalf("close guest 2: %v", err)
	}

	ovs.StopSwitch()
	ovs.StartSwitch()
	ping(t, ip1, 60*time.Second)
	t.Log("traffic resumed after the OVS restart")

	if err := first.Close(); err != nil {
		t.Fatalf("close guest 1: %v", err)
	}
	if ports := ovs.Vsctl("--columns=name", "find", "Port", "external_ids:vmcni-network=vmct-vhu"); ports != "" {
		t.Fatalf("ports left: %s", ports)
	}
	if entries, _ := os.ReadDir(sockDir); len(entries) != 0 {
		t.Fatalf("socket dir not empty: %v", entries)
	}
}

// TestOVSDPDKMultiqueue boots a guest with 2 vCPUs on a vm-vhostuser port
// with queues 2 on a real OVS-DPDK bridge: QEMU offers 2 queue pairs
// (mq=on), the guest runs both (its NIC has 2 receive queues), OVS polls 2
// receive queues on the port once the guest enabled them, and traffic
// flows (ping and HTTP both ways with a host port).
func TestOVSDPDKMultiqueue(t *testing.T) {
	kernel, initrd := guestImage(t)
	bin := testutil.Binaries(t)
	o := newOVSNet(t, "10.197.0", map[string]any{"queues": 2})
	ovs, conf, port := o.ovs, o.conf, o.port
	s, err := launcher.Start(context.Background(), launcher.Options{
		Conflist: conf, CNIPath: []string{bin}, Kernel: kernel, Initrd: initrd, CPUs: 2,
		BootTimeout: 90 * time.Second, ProbeGateway: true, ProbeTCP: fmt.Sprintf("10.197.0.1:%d", port),
	})
	if err != nil {
		t.Fatalf("start guest: %v", err)
	}
	defer s.Close()
	if !strings.Contains(s.Ready, " queues=2") {
		t.Fatalf("guest READY %q: want 2 queues", s.Ready)
	}
	ip := s.GuestIP(false)
	ping(t, ip, 30*time.Second)
	httpGet(t, fmt.Sprintf("http://%s:8080/", ip), "vmcni-guest-ok")
	waitConsole(t, s, "VMCNI-PROBE-OK")
	waitConsole(t, s, "VMCNI-PROBETCP-OK")
	name := ovs.Vsctl("--bare", "--columns=name", "find", "Interface", "type=dpdkvhostuserclient")
	var rxqs int
	for _, line := range strings.Split(ovs.Appctl("dpif-netdev/pmd-rxq-show"), "\n") {
		if strings.Contains(line, "port: "+name+" ") && strings.Contains(line, "(enabled)") {
			rxqs++
		}
	}
	if rxqs != 2 {
		t.Fatalf("OVS polls %d enabled receive queues on %s, want 2:\n%s", rxqs, name, ovs.Appctl("dpif-netdev/pmd-rxq-show"))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close guest: %v", err)
	}
}

// TestTestpmdBackendNone: backend none, the VMM as vhost-user client of a
// DPDK testpmd that forwards between the socket and a host tap; the guest
// answers the host's ping and HTTP through it.
func TestTestpmdBackendNone(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, err := exec.LookPath("dpdk-testpmd"); err != nil {
		t.Skip("skipped: dpdk-testpmd missing; install dpdk-dev (make deps)")
	}
	kernel, initrd := guestImage(t)
	bin := testutil.Binaries(t)
	dir := t.TempDir()
	sockDir, _ := os.MkdirTemp("/tmp", "vmct-vhu")
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	tapName := testutil.UniqueName("vmcttp")
	prefix := testutil.UniqueName("vmct")
	conf := conflist(t, map[string]any{
		"type": "vm-vhostuser", "backend": "none", "mode": "client",
		"socketDir": sockDir, "stateDir": filepath.Join(dir, "state"),
		"ipam": hostLocal(dir, "10.195.0.0/24", "10.195.0.10"),
	})
	var testpmd *exec.Cmd
	t.Cleanup(func() {
		if testpmd != nil && testpmd.Process != nil {
			_ = testpmd.Process.Kill()
			_ = testpmd.Wait()
		}
		_ = os.RemoveAll("/var/run/dpdk/" + prefix)
	})
	s, err := launcher.Start(context.Background(), launcher.Options{
		Conflist: conf, CNIPath: []string{bin}, Kernel: kernel, Initrd: initrd, BootTimeout: 90 * time.Second,
		BeforeBoot: func(s *launcher.Session) error {
			// the backend listens on the socket vm-vhostuser planned
			sock := s.Plan.NICs[0].VhostUser.Socket
			// DPDK's EAL init occasionally fails on a loaded machine: retry.
			for attempt := 0; attempt < 3 && !testutil.FileExists(sock); attempt++ {
				if testpmd != nil {
					_ = testpmd.Process.Kill()
					_ = testpmd.Wait()
					_ = os.RemoveAll("/var/run/dpdk/" + prefix)
				}
				testpmd = exec.Command("dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "512", "--no-pci",
					"--file-prefix", prefix, "--vdev", "net_vhost0,iface="+sock+",client=0",
					"--vdev", "net_tap0,iface="+tapName, "--", "--forward-mode=io", "--auto-start",
					"--stats-period", "5", "--total-num-mbufs=8192")
				if err := testpmd.Start(); err != nil {
					return err
				}
				for i := 0; i < 100 && !testutil.FileExists(sock); i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
			l, err := link.ByName(tapName)
			if err != nil {
				return err
			}
			ipnet, _ := netlink.ParseIPNet("10.195.0.1/24")
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
				return err
			}
			return link.SetUp(l)
		},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer s.Close()
	ip := s.GuestIP(false)
	ping(t, ip, 30*time.Second)
	httpGet(t, fmt.Sprintf("http://%s:8080/", ip), "vmcni-guest-ok")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(sockDir); len(entries) != 0 {
		t.Fatalf("socket dir not empty: %v", entries)
	}
}
