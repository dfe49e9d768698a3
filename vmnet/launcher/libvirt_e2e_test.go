package launcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vmnet"
)

// libvirtUID is the unprivileged user libvirt and QEMU run as (nobody),
// as KubeVirt's non-root virt-launcher runs them.
const libvirtUID = 65534

// TestLibvirtVirtLauncher boots the test guest under Debian's libvirt the
// way KubeVirt's non-root virt-launcher does: an unprivileged session
// libvirtd started inside the pod netns, and a domain from
// vmnet.LibvirtDomain with <interface type='ethernet'><target
// managed='no'/> on the device vm-bridge made: its tap (tcfilter mode,
// tapOwner: that user), and its macvtap, whose /dev/tap<ifindex> node the
// test hands to that user as KubeVirt's device plugin does. The guest
// takes its address from the hint, answers ping, HTTP and TCP from the
// host and reaches the host's gateway and HTTP server. libvirt's state
// lives in the test's directory; afterwards the host is as before and no
// libvirtd is left.
func TestLibvirtVirtLauncher(t *testing.T) {
	testutil.RequiresRoot(t)
	kernel, initrd := guestImage(t)
	for _, bin := range []string{"libvirtd", "virsh", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed (make deps installs libvirt)", bin)
		}
	}
	bin := testutil.Binaries(t)
	port := serveHost(t)
	boot := func(t *testing.T, n vmBridgeNet) {
		before := testutil.TakeSnapshot(t, n.dirs, n.bridge)
		bootUnderLibvirt(t, bin, kernel, initrd, n, port)
		testutil.AssertSameHost(t, before, n.dirs, n.bridge)
		if out, err := exec.Command("pgrep", "-u", fmt.Sprint(libvirtUID), "-x", "libvirtd").Output(); err == nil {
			t.Fatalf("libvirtd left running: %s", out)
		}
	}
	for i, mode := range []string{"tcfilter", "macvtap"} {
		t.Run(mode, func(t *testing.T) {
			n := newVMBridgeNet(t, mode, 50+i)
			n.conf = withTapOwner(t, n.conf, libvirtUID)
			boot(t, n)
		})
	}
	t.Run("vhost-user", func(t *testing.T) {
		if _, err := exec.LookPath("dpdk-testpmd"); err != nil {
			t.Fatal("dpdk-testpmd missing; install dpdk-dev (make deps)")
		}
		boot(t, newVhostUserNet(t, 52))
	})
}

// newVhostUserNet is vm-vhostuser (backend none, QEMU the server) with
// the socket directory's group the libvirt user's, and DPDK testpmd as the
// switch: the vhost-user client of the socket, forwarding to a host tap
// that is the guest's gateway 10.199.<subnet>.1. The testpmd tap is the
// link the host snapshots leave out (bridge).
func newVhostUserNet(t *testing.T, subnet int) vmBridgeNet {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("/tmp", "vmct-vhu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := vmBridgeNet{
		gateway: fmt.Sprintf("10.199.%d.1", subnet),
		dirs:    []string{filepath.Join(dir, "state"), filepath.Join(dir, "ipam"), sockDir},
	}
	n.conf, _ = json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "vmct-lv-vhu",
		"plugins": []map[string]any{{
			"type": "vm-vhostuser", "backend": "none", "socketDir": sockDir,
			"group": fmt.Sprint(libvirtUID), "socketDirMode": "0770", "stateDir": n.dirs[0],
			"ipam": map[string]any{
				"type": "host-local", "dataDir": n.dirs[1],
				"ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.199.%d.0/24", subnet), "rangeStart": fmt.Sprintf("10.199.%d.10", subnet)}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
			},
		}},
	})
	return n
}

// bootUnderLibvirt runs ADD of n in a new netns, boots the guest on its
// device under a session libvirtd in that netns, checks traffic both
// ways, and stops everything, DEL included.
func bootUnderLibvirt(t *testing.T, bin, kernel, initrd string, n vmBridgeNet, port int) {
	t.Helper()
	ns := testutil.NewNS(t)
	list, err := libcni.ConfListFromBytes(n.conf)
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{bin}, t.TempDir(), nil)
	rt := testutil.Runtime(testutil.UniqueName("c"), ns.Path, "eth0")
	ctx := context.Background()
	res, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = cni.DelNetworkList(ctx, list, rt)
		}
	})
	plan, err := vmnet.PlanFromResult(res, rt.ContainerID, n.dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if mv := plan.NICs[0].Macvtap; mv != nil {
		handOverCharDev(t, mv)
	}
	if vu := plan.NICs[0].VhostUser; vu != nil {
		// the switch: a vhost-user client, reconnecting until QEMU listens
		tap, stopSwitch := startTestpmd(t, vu.Socket)
		defer stopSwitch() // its tap goes with it, before the host is compared
		addAddress(t, tap, n.gateway+"/24")
	}
	lv := startSessionLibvirt(t, ns.Name)
	console := filepath.Join(lv.dir, "console.log")
	name := "vmct-" + rt.ContainerID
	domain, err := vmnet.LibvirtDomain(plan, vmnet.LibvirtOptions{
		Name: name, Kernel: kernel, Initrd: initrd, Console: console,
		Cmdline: "console=ttyS0 panic=-1 quiet " + vmnet.GuestCmdline(plan) +
			fmt.Sprintf(" vmcni.probe=%s vmcni.probetcp=%s:%d", n.gateway, n.gateway, port),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("domain:\n%s", domain)
	xmlPath := filepath.Join(lv.dir, "domain.xml")
	if err := os.WriteFile(xmlPath, domain, 0o644); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_, _ = lv.run("destroy", name)
			_, _ = lv.run("undefine", name)
		})
	}
	defer stop()
	lv.virsh(t, "define", xmlPath)
	lv.virsh(t, "start", name)

	ready := waitFile(t, console, "VMCNI-GUEST-READY", 120*time.Second)
	guestIP := strings.Split(plan.NICs[0].IPs[0].Address, "/")[0]
	if !strings.Contains(ready, "ip="+guestIP+"/") {
		t.Fatalf("guest did not take its address from the hint: %q", ready)
	}
	t.Logf("guest under libvirt: %s", ready)
	pingGuest(t, parseIP(t, guestIP), 30*time.Second)
	assertHTTP(t, fmt.Sprintf("http://%s:8080/", guestIP), "vmcni-guest-ok")
	assertEcho(t, guestIP+":7777")
	waitFile(t, console, "VMCNI-PROBE-OK "+n.gateway, 60*time.Second)
	waitFile(t, console, fmt.Sprintf("VMCNI-PROBETCP-OK %s:%d", n.gateway, port), 60*time.Second)

	stop()
	lv.stop()
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	deleted = true
}

// handOverCharDev gives libvirtUID the macvtap's /dev/tap<ifindex> node
// (as KubeVirt's device plugin hands it to virt-launcher), after checking
// it is the hint's device; its owner is restored when t ends.
func handOverCharDev(t *testing.T, mv *hint.Macvtap) {
	t.Helper()
	node := fmt.Sprintf("/dev/tap%d", mv.Ifindex)
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		t.Fatalf("macvtap node: %v", err)
	}
	if unix.Major(st.Rdev) != mv.Major || unix.Minor(st.Rdev) != mv.Minor {
		t.Fatalf("%s is %d:%d, the hint's macvtap %d:%d", node, unix.Major(st.Rdev), unix.Minor(st.Rdev), mv.Major, mv.Minor)
	}
	if err := os.Chown(node, libvirtUID, libvirtUID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chown(node, int(st.Uid), int(st.Gid)) })
}

// sessionLibvirt is a libvirtd of libvirtUID (qemu:///session) whose
// state is all under dir.
type sessionLibvirt struct {
	dir    string
	env    []string
	daemon *exec.Cmd
}

// startSessionLibvirt starts the daemon inside the named netns and waits
// for its socket; it is stopped and its directory removed when t ends.
func startSessionLibvirt(t *testing.T, netnsName string) *sessionLibvirt {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmct-libvirt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	lv := &sessionLibvirt{dir: dir}
	for _, sub := range []string{"home", "run", "config", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := chownTree(dir, libvirtUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lv.env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + filepath.Join(dir, "home"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"LIBVIRT_AUTOSTART=0", // virsh must never start a daemon of its own
	}
	logFile, err := os.Create(filepath.Join(dir, "libvirtd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	lv.daemon = exec.Command("ip", append([]string{"netns", "exec", netnsName}, asUser("libvirtd")...)...)
	lv.daemon.Env, lv.daemon.Stdout, lv.daemon.Stderr = lv.env, logFile, logFile
	if err := lv.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lv.stop)
	sock := filepath.Join(dir, "run", "libvirt", "libvirt-sock")
	deadline := time.Now().Add(30 * time.Second)
	for !testutil.FileExists(sock) {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "libvirtd.log"))
			t.Fatalf("libvirtd did not create %s:\n%s", sock, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return lv
}

// stop ends the daemon (idempotent).
func (lv *sessionLibvirt) stop() {
	if lv.daemon == nil || lv.daemon.Process == nil {
		return
	}
	// (ip netns exec and setpriv exec: the process is libvirtd itself)
	_ = lv.daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = lv.daemon.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = lv.daemon.Process.Kill()
		<-done
	}
	lv.daemon = nil
}

// run runs virsh on the session daemon.
func (lv *sessionLibvirt) run(args ...string) (string, error) {
	cmd := exec.Command(asUser("virsh")[0], append(asUser("virsh")[1:], append([]string{"-c", "qemu:///session"}, args...)...)...)
	cmd.Env = lv.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (lv *sessionLibvirt) virsh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := lv.run(args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(lv.dir, "libvirtd.log"))
		t.Fatalf("virsh %v: %v\n%s\nlibvirtd log:\n%s", args, err, out, log)
	}
}

// asUser prefixes a command to run as libvirtUID with no supplementary
// groups. (The domains are TCG: this machine's nested KVM boots no guest.)
func asUser(cmd string) []string {
	id := fmt.Sprint(libvirtUID)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", cmd}
}

func chownTree(dir string, uid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, uid)
	})
}

// waitFile waits for a line starting with prefix in the file at path and
// returns it.
func waitFile(t *testing.T, path, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, prefix); i >= 0 {
				return strings.TrimSpace(line[i:])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %s after %s:\n%s", prefix, path, timeout, data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// withTapOwner sets tapOwner on the first plugin of a conflist.
func withTapOwner(t *testing.T, conf []byte, uid int) []byte {
	t.Helper()
	var list map[string]any
	if err := json.Unmarshal(conf, &list); err != nil {
		t.Fatal(err)
	}
	list["plugins"].([]any)[0].(map[string]any)["tapOwner"] = uid
	out, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseIP(t *testing.T, s string) net.IP {
	t.Helper()
	ip := net.ParseIP(s)
	if ip == nil {
		t.Fatalf("bad IP %q", s)
	}
	return ip
}
