package launcher_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/hostsnap"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vmnet"
)

var (
	vmnetOnce sync.Once
	vmnetBin  string
	vmnetErr  error
)

// vmnetBinary builds the vmnet command as the pod image ships it (static,
// CGO_ENABLED=0), once per test process, next to the plugin binaries
// (removed by testutil.Main).
func vmnetBinary(t *testing.T) string {
	t.Helper()
	dir := testutil.Binaries(t)
	vmnetOnce.Do(func() {
		vmnetBin = filepath.Join(dir, "vmnet")
		cmd := exec.Command("go", "build", "-o", vmnetBin, "./vmnet/cmd/vmnet")
		cmd.Dir = testutil.ModuleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			vmnetErr = fmt.Errorf("go build vmnet: %w\n%s", err, out)
		}
	})
	if vmnetErr != nil {
		t.Fatal(vmnetErr)
	}
	return vmnetBin
}

// TestPodOnEveryMode is `vmnet pod` as the container of a VM pod: vm-bridge
// ADD through libcni into a netns (the kubelet's and Multus's part), then
// the built binary run inside that netns by `ip netns exec` (which, like a
// container runtime, also gives it the netns's own /sys). It checks the
// plan line, the READY marker with the attachment's IP and MAC, ping from
// the host, the guest's probes of the gateway (and, in tcfilter mode, of a
// peer that answers only from 3 s after READY on: the probe must retry),
// and that SIGTERM stops QEMU and exits 0. vmnet pod must leave the pod netns exactly as it found it;
// after DEL, vm-bridge's state and IPAM directories are as before. (The
// whole host is not compared: this runs while other tests on the machine
// add and remove links and vmcni nftables rules; TestGuestOnEveryMode
// covers vm-bridge's host side.)
func TestPodOnEveryMode(t *testing.T) {
	testutil.RequiresRoot(t)
	kernel, initrd := guestImage(t)
	bin := vmnetBinary(t)
	port := serveHost(t)
	for i, tc := range []struct{ mode, kind string }{{"tcfilter", "tap"}, {"macvtap", "macvtap"}, {"bridge", "tap"}} {
		t.Run(tc.mode, func(t *testing.T) {
			n := newVMBridgeNet(t, tc.mode, 20+i)
			dirsBefore := dirSnapshot(t, n.dirs)
			ns := testutil.NewNS(t)
			cni := testutil.NewCNI(t, testutil.Binaries(t), n.conf)
			rt := testutil.Runtime("vmct-pod-"+tc.mode, ns.Path, "net1")
			res, err := cni.Add(rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _ = cni.Del(rt) })
			pseudo, guestIP := pseudoInterface(t, res, rt.ContainerID)
			podBefore := netnsSnapshot(t, ns.Path)

			tcpTarget := fmt.Sprintf("%s:%d", n.gateway, port)
			args := []string{"netns", "exec", ns.Name, bin, "pod", "--kernel", kernel, "--initrd", initrd,
				"--hostname", "vmct-pod", "--probe", n.gateway, "--probe-tcp", tcpTarget, "--probe-wait", "25s"}
			// a peer that comes up only after the guest (a VM still booting)
			late := fmt.Sprintf("10.199.%d.99", 20+i)
			if i == 0 {
				args = append(args, "--probe", late)
			}
			pod := startPod(t, "ip", args...)

			plan := pod.waitFor(t, "VMNET-PLAN ", 30*time.Second)
			var summary struct{ NICs []vmnet.NICSummary }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(plan, "VMNET-PLAN ")), &summary); err != nil {
				t.Fatalf("plan line %q: %v", plan, err)
			}
			if len(summary.NICs) != 1 || string(summary.NICs[0].Kind) != tc.kind || summary.NICs[0].MAC != pseudo.Mac ||
				summary.NICs[0].IfName != "net1" || len(summary.NICs[0].IPs) != 1 || !strings.HasPrefix(summary.NICs[0].IPs[0], guestIP+"/") {
				t.Fatalf("plan %+v, want one %s with mac %s and ip %s on net1", summary.NICs, tc.kind, pseudo.Mac, guestIP)
			}
			ready := pod.waitFor(t, "VMCNI-GUEST-READY ", 150*time.Second)
			if !strings.Contains(ready, " ip="+guestIP+"/") || !strings.Contains(ready, " mac="+pseudo.Mac+" ") {
				t.Fatalf("READY %q, want ip %s and mac %s", ready, guestIP, pseudo.Mac)
			}
			booted := pod.waitFor(t, "VMNET-BOOTED ", 10*time.Second)
			t.Logf("%s: %s", tc.mode, booted)
			if i == 0 {
				time.Sleep(3 * time.Second) // the guest's first echoes to it go unanswered
				addAddress(t, n.bridge, late+"/32")
			}

			pingGuest(t, net.ParseIP(guestIP), 20*time.Second)
			pod.waitFor(t, "VMCNI-PROBE-OK "+n.gateway, 60*time.Second)
			pod.waitFor(t, "VMCNI-PROBETCP-OK "+tcpTarget, 60*time.Second)
			if i == 0 {
				pod.waitFor(t, "VMCNI-PROBE-OK "+late, 60*time.Second)
				if stats := pod.waitFor(t, "VMCNI-PROBE-STATS "+late+" round ", time.Second); strings.HasPrefix(stats, "VMCNI-PROBE-STATS "+late+" round 1:") {
					t.Fatalf("the late peer answered in the first round (%q): the test proves no retry", stats)
				}
			}

			pod.terminate(t)
			if diff := hostsnap.Diff(podBefore, netnsSnapshot(t, ns.Path)); len(diff) > 0 {
				t.Fatalf("vmnet pod changed the pod netns:\n%s", strings.Join(diff, "\n"))
			}
			if err := cni.Del(rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if diff := hostsnap.Diff(dirsBefore, dirSnapshot(t, n.dirs)); len(diff) > 0 {
				t.Fatalf("state or IPAM left after DEL:\n%s", strings.Join(diff, "\n"))
			}
		})
	}
}

// TestPodWithoutDevice: a netns without a vmcni device fails after --wait,
// saying what is missing, and boots nothing.
func TestPodWithoutDevice(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := vmnetBinary(t)
	ns := testutil.NewNS(t)
	status := filepath.Join(t.TempDir(), "network-status")
	out, err := exec.Command("ip", "netns", "exec", ns.Name, bin, "pod", "--wait", "2s", "--network-status", status).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("vmnet pod in an empty netns: %v\n%s", err, out)
	}
	if want := status + " holds no k8s.v1.cni.cncf.io/network-status annotation (waited 2s)"; !strings.Contains(string(out), want) {
		t.Fatalf("output %q lacks %q", out, want)
	}
	if err := os.WriteFile(status, []byte(`[{"name":"k8s-pod-network","interface":"eth0","default":true}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command("ip", "netns", "exec", ns.Name, bin, "pod", "--wait", "0s", "--network-status", status).CombinedOutput()
	if want := `no NIC found: no tap or macvtap with a vmcni alias in netns "/proc/self/ns/net" and no vhost-user device-info in ` + status; !strings.Contains(string(out), want) {
		t.Fatalf("output %q lacks %q", out, want)
	}
}

// TestPodVhostUser is `vmnet pod` on a vhost-user device it learns only
// from a network-status file, as Multus writes it for vm-vhostuser with
// ovs-dpdk: device-info mode "server", so QEMU listens on the socket. The
// switch is DPDK testpmd (vhost-user client, reconnecting until QEMU
// listens) forwarding to a host tap that is the guest's gateway. vmnet pod
// runs in a netns of its own, which holds no vmcni device.
func TestPodVhostUser(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, err := exec.LookPath("dpdk-testpmd"); err != nil {
		t.Skip("skipped: dpdk-testpmd missing; install dpdk-dev (make deps)")
	}
	kernel, initrd := guestImage(t)
	bin := vmnetBinary(t)
	sockDir, err := os.MkdirTemp("/tmp", "vmct-vhu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "sock")
	tapName, _ := startTestpmd(t, sock)
	addAddress(t, tapName, "10.196.0.1/24")

	const guestIP, mac = "10.196.0.10", "0a:58:0a:c4:00:0a"
	status := filepath.Join(t.TempDir(), "network-status")
	annotation := fmt.Sprintf(`[{"name":"k8s-pod-network","interface":"eth0","ips":["10.244.0.9"],"mac":"be:5b:2e:0c:53:1a","default":true,"dns":{}},
{"name":"default/vm-vhostuser","interface":"sock","ips":[%q],"mac":%q,"dns":{},"gateway":["10.196.0.1"],
 "device-info":{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server","path":%q}}}]`, guestIP, mac, sock)
	if err := os.WriteFile(status, []byte(annotation), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := testutil.NewNS(t)
	pod := startPod(t, "ip", "netns", "exec", ns.Name, bin, "pod", "--kernel", kernel, "--initrd", initrd,
		"--network-status", status, "--probe", "10.196.0.1", "--probe-wait", "30s", "--boot-timeout", "90s")
	plan := pod.waitFor(t, "VMNET-PLAN ", 30*time.Second)
	if !strings.Contains(plan, `"kind":"vhost-user"`) || !strings.Contains(plan, `"where":"`+sock+` (server)"`) {
		t.Fatalf("plan %q, want one vhost-user NIC with QEMU the server of %s", plan, sock)
	}
	ready := pod.waitFor(t, "VMCNI-GUEST-READY ", 200*time.Second)
	if !strings.Contains(ready, " ip="+guestIP+"/24 ") || !strings.Contains(ready, " mac="+mac+" ") {
		t.Fatalf("READY %q, want ip %s/24 and mac %s", ready, guestIP, mac)
	}
	t.Logf("vhost-user: %s", pod.waitFor(t, "VMNET-BOOTED ", 10*time.Second))
	pingGuest(t, net.ParseIP(guestIP), 30*time.Second)
	pod.waitFor(t, "VMCNI-PROBE-OK 10.196.0.1", 60*time.Second)
	pod.terminate(t)
}

// startTestpmd runs DPDK testpmd as the vhost-user client of sock (it
// reconnects until the socket is there), forwarding to a new host tap whose
// name it returns, with stop (idempotent; it also runs when the test ends).
func startTestpmd(t *testing.T, sock string) (tap string, stop func()) {
	t.Helper()
	tapName, prefix := testutil.UniqueName("vmcttp"), testutil.UniqueName("vmct")
	var cmd *exec.Cmd
	stop = func() {
		if cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			cmd = nil
		}
		_ = os.RemoveAll("/var/run/dpdk/" + prefix)
	}
	t.Cleanup(stop)
	// DPDK's EAL init occasionally fails on a loaded machine: retry.
	for attempt := 0; attempt < 3; attempt++ {
		stop()
		cmd = exec.Command("dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "512", "--no-pci",
			"--file-prefix", prefix, "--vdev", "net_vhost0,iface="+sock+",client=1",
			"--vdev", "net_tap0,iface="+tapName, "--", "--forward-mode=io", "--auto-start",
			"--stats-period", "5", "--total-num-mbufs=8192")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := link.ByName(tapName); err == nil {
				return tapName, stop
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Fatalf("testpmd made no tap %q", tapName)
	return "", stop
}

// addAddress adds cidr to the host link name and sets it up.
func addAddress(t *testing.T, name, cidr string) {
	l, err := link.ByName(name)
	if err == nil {
		ipnet, _ := netlink.ParseIPNet(cidr)
		err = netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet})
	}
	if err == nil {
		err = link.SetUp(l)
	}
	if err != nil {
		t.Errorf("add %s to %q: %v", cidr, name, err)
	}
}

// netnsSnapshot records the links, addresses, qdiscs and routes of the
// netns at path, but IPv6 link-local addresses and routes: the kernel gives
// a tap one when its carrier first comes up (QEMU attaching), which is
// addrconf's doing, not vmnet's.
func netnsSnapshot(t *testing.T, path string) hostsnap.Snapshot {
	t.Helper()
	var s hostsnap.Snapshot
	err := netns.Do(path, func() (err error) {
		s, err = hostsnap.Take(hostsnap.Options{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dropLines(s, func(l string) bool {
		return strings.HasPrefix(l, "route fe80::/64 ") || strings.HasPrefix(l, "addr ") && strings.Contains(l, " fe80:")
	})
}

// dirSnapshot records only what lies under dirs.
func dirSnapshot(t *testing.T, dirs []string) hostsnap.Snapshot {
	t.Helper()
	s, err := hostsnap.Take(hostsnap.Options{Dirs: dirs, SkipLink: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	return dropLines(s, func(l string) bool { return strings.HasPrefix(l, "nft ") || strings.HasPrefix(l, "route ") })
}

func dropLines(s hostsnap.Snapshot, drop func(string) bool) hostsnap.Snapshot {
	var lines []string
	for _, l := range s.Lines {
		if !drop(l) {
			lines = append(lines, l)
		}
	}
	s.Lines = lines
	return s
}

// pseudoInterface returns the result's pseudo-interface of containerID and
// its first IPv4 address.
func pseudoInterface(t *testing.T, res *current.Result, containerID string) (*current.Interface, string) {
	t.Helper()
	for i, iface := range res.Interfaces {
		if iface.Sandbox != containerID {
			continue
		}
		for _, ip := range res.IPs {
			if ip.Interface != nil && *ip.Interface == i && ip.Address.IP.To4() != nil {
				return iface, ip.Address.IP.String()
			}
		}
	}
	t.Fatalf("no pseudo-interface with an IPv4 address in %+v", res)
	return nil, ""
}

// podProcess is a running `vmnet pod` with its stdout and stderr kept as
// lines.
type podProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed

	mu    sync.Mutex // guards lines and wake
	lines []string
	wake  chan struct{} // closed and replaced on every new line
}

func startPod(t *testing.T, name string, args ...string) *podProcess {
	t.Helper()
	p := &podProcess{cmd: exec.Command(name, args...), done: make(chan struct{}), wake: make(chan struct{})}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(r)
	go func() {
		p.err = p.cmd.Wait()
		_ = w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("vmnet pod output:\n%s", p.output())
		}
	})
	return p
}

func (p *podProcess) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.wake)
		p.wake = make(chan struct{})
		p.mu.Unlock()
	}
}

// waitFor returns the first line starting with prefix, failing the test
// after timeout or when the process exits without it.
func (p *podProcess) waitFor(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.HasPrefix(l, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-p.done:
			// the last lines may still be on their way
			time.Sleep(100 * time.Millisecond)
			if l := p.find(prefix); l != "" {
				return l
			}
			t.Fatalf("vmnet pod exited (%v) before %q:\n%s", p.err, prefix, p.output())
		case <-deadline:
			t.Fatalf("no %q after %s:\n%s", prefix, timeout, p.output())
		}
	}
}

func (p *podProcess) find(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (p *podProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// terminate sends SIGTERM as the kubelet does to stop a pod, and checks
// that vmnet pod says so, exits 0 within 15 s and leaves no QEMU behind.
func (p *podProcess) terminate(t *testing.T) {
	t.Helper()
	qemu := p.child(t)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("vmnet pod still running 15 s after SIGTERM")
	}
	if p.err != nil {
		t.Fatalf("vmnet pod after SIGTERM: %v", p.err)
	}
	p.waitFor(t, "VMNET-STOPPED reason=signal", time.Second)
	if err := syscall.Kill(qemu, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("QEMU (pid %d) still there after vmnet pod exited: %v", qemu, err)
	}
}

// child returns the pid of the process's QEMU child.
func (p *podProcess) child(t *testing.T) int {
	t.Helper()
	pid := p.cmd.Process.Pid
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var children []string // listed per thread
	for _, task := range tasks {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		children = append(children, strings.Fields(string(data))...)
	}
	for _, c := range children {
		cpid, _ := strconv.Atoi(c)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cpid)); strings.HasPrefix(string(comm), "qemu") {
			return cpid
		}
	}
	t.Fatalf("vmnet pod (pid %d) has no QEMU child (children %v)", pid, children)
	return 0
}
