package conformance_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// podmanBusybox is the static busybox copied into the test image
// (Debian's busybox-static).
const podmanBusybox = "/bin/busybox"

// podmanTimeout bounds every podman call.
const podmanTimeout = 2 * time.Minute

// TestPodman runs a container with the real client podman 4.3 (CNI
// backend) on a vm-bridge (tcfilter) conflist. podman is configured only
// through CONTAINERS_CONF and flags, with storage, run and tmp dirs in the
// test's temp dir, and CNI plugins taken from the freshly built binaries
// (not from containernetworking-plugins). The image is built locally (a
// busybox rootfs imported with podman import: no registry). Checked: the
// container netns holds eth0 with the address vm-bridge allocated and the
// tap, the hint file exists for podman's container ID, and after podman rm
// the host is as before.
func TestPodman(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (apt-get install podman): skipping the podman CNI client test")
	}
	if _, err := os.Stat(podmanBusybox); err != nil {
		t.Skipf("%s is missing (apt-get install busybox-static): needed to build the test image", podmanBusybox)
	}
	e := newEnv(t)

	netDir := t.TempDir()
	name := testutil.UniqueName("vmct-podman")
	// podman 4.3 vendors libcni 1.1, which knows CNI versions up to 1.0.0.
	data, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []map[string]any{e.vmBridge("tcfilter")}})
	if err := os.WriteFile(filepath.Join(netDir, "10-vmct.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	base := t.TempDir()
	root, runRoot, tmpDir := filepath.Join(base, "root"), filepath.Join(base, "runroot"), filepath.Join(base, "tmp")
	for _, d := range []string{root, runRoot, tmpDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(base, "containers.conf")
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[network]
network_backend = "cni"
network_config_dir = %q
cni_plugin_dirs = [%q]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
image_copy_tmp_dir = %q
`, netDir, e.bin, filepath.Join(tmpDir, "events.log"), tmpDir, tmpDir)
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// A private storage.conf keeps the host's out (the flags say the same).
	storageConf := filepath.Join(base, "storage.conf")
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", root, runRoot)
	if err := os.WriteFile(storageConf, []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), podmanTimeout)
		defer cancel()
		full := append([]string{"--root", root, "--runroot", runRoot, "--tmpdir", tmpDir,
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)
		cmd := exec.CommandContext(ctx, podman, full...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+confPath, "CONTAINERS_STORAGE_CONF="+storageConf, "TMPDIR="+tmpDir)
		cmd.WaitDelay = 10 * time.Second
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (timeout %v)", err, podmanTimeout)
			}
			return stdout.String(), fmt.Errorf("podman %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String(), nil
	}
	// podman 4.3 as root also writes two host paths that no flag moves:
	// containers/image's blob-info cache and the SHM lock file. Remove them
	// afterwards when this test created them.
	var created []string
	for _, p := range []string{"/var/lib/containers/cache/blob-info-cache-v1.boltdb", "/var/lib/containers/cache",
		"/var/lib/containers", "/dev/shm/libpod_lock"} {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			created = append(created, p)
		}
	}
	// Runs before the temp dirs are removed (and before newEnv deletes the
	// bridge): remove every container (CNI DEL), then whatever podman left
	// mounted under its dirs, then the dirs.
	t.Cleanup(func() {
		if _, err := run("rm", "-a", "-f", "-t", "0"); err != nil {
			t.Logf("cleanup: %v", err)
		}
		podmanUnmountUnder(t, base)
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("cleanup: remove podman dirs: %v", err)
		}
		for _, p := range created {
			_ = os.Remove(p) // a directory only goes when empty
		}
	})

	image := "localhost/" + testutil.UniqueName("vmct-busybox") + ":test"
	rootfs := filepath.Join(base, "rootfs.tar")
	podmanBusyboxRootfs(t, rootfs)
	if _, err := run("import", "--quiet", rootfs, image); err != nil {
		t.Fatal(err)
	}

	dirs := []string{e.stateDir, e.ipamDir}
	before := testutil.TakeSnapshot(t, dirs, e.bridge)

	out, err := run("run", "-d", "--network", name, image, "/bin/sleep", "300")
	if err != nil {
		if strings.Contains(err.Error(), "invalid MAC address") {
			t.Fatalf("%v\npodman 4.3 (containers/common libnetwork/cni CNIResultToStatus) parses the MAC of every "+
				"result interface that has a sandbox: each such entry in vm-bridge's result needs a \"mac\"", err)
		}
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if i := strings.LastIndexByte(id, '\n'); i >= 0 {
		id = id[i+1:]
	}

	out, err = run("inspect", "--type", "container", id)
	if err != nil {
		t.Fatal(err)
	}
	var insp []struct {
		ID    string `json:"Id"`
		State struct {
			Pid int `json:"Pid"`
		} `json:"State"`
		NetworkSettings struct {
			SandboxKey string `json:"SandboxKey"`
			Networks   map[string]struct {
				IPAddress   string `json:"IPAddress"`
				IPPrefixLen int    `json:"IPPrefixLen"`
				MacAddress  string `json:"MacAddress"`
			} `json:"Networks"`
		} `json:"NetworkSettings"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("podman inspect: %v\n%s", err, out)
	}
	c := insp[0]
	if c.ID != "" {
		id = c.ID
	}
	nsPath := c.NetworkSettings.SandboxKey
	if nsPath == "" {
		if c.State.Pid == 0 {
			t.Fatalf("podman inspect gives neither SandboxKey nor Pid:\n%s", out)
		}
		nsPath = "/proc/" + strconv.Itoa(c.State.Pid) + "/ns/net"
	}
	pn, ok := c.NetworkSettings.Networks[name]
	if !ok || pn.IPAddress == "" {
		t.Fatalf("podman inspect: no address on network %q: %+v", name, c.NetworkSettings.Networks)
	}

	// The hint file, under stateDir/<podman's container ID>.
	entries, err := os.ReadDir(e.stateDir)
	if err != nil {
		t.Fatalf("state dir: %v", err)
	}
	var ids []string
	for _, ent := range entries {
		if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") { // .locks is vm-bridge's own
			ids = append(ids, ent.Name())
		}
	}
	if len(ids) != 1 || ids[0] != id {
		t.Fatalf("state dir %s holds %v, want only podman's container ID %s", e.stateDir, ids, id)
	}
	h, err := hint.Read(e.stateDir, id, "eth0")
	if err != nil {
		t.Fatalf("hint of the podman container: %v", err)
	}
	if h.Kind != hint.KindTap || h.Tap == nil || h.Tap.Name != "tap_eth0" || h.Tap.Wiring != "tcfilter" {
		t.Fatalf("hint: want a tcfilter tap tap_eth0, got %+v (tap %+v)", h, h.Tap)
	}
	if len(h.Guest.IPs) == 0 {
		t.Fatalf("hint has no guest IP: %+v", h.Guest)
	}
	guestIP, guestNet, err := net.ParseCIDR(h.Guest.IPs[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	if !guestIP.Equal(net.ParseIP(pn.IPAddress)) {
		t.Fatalf("podman reports %s, vm-bridge's hint %s", pn.IPAddress, h.Guest.IPs[0].Address)
	}
	if _, sub, _ := net.ParseCIDR(e.subnet); !sub.Contains(guestIP) {
		t.Fatalf("address %s is not in the test subnet %s", guestIP, e.subnet)
	}

	// The container's netns: eth0 with that address, and the tap.
	err = netns.Do(nsPath, func() error {
		eth0, err := link.ByName("eth0")
		if err != nil {
			return fmt.Errorf("eth0: %w", err)
		}
		addrs, err := netlink.AddrList(eth0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		found := false
		for _, a := range addrs {
			if a.IP.Equal(guestIP) && a.Mask.String() == guestNet.Mask.String() {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("eth0 lacks %s: %v", h.Guest.IPs[0].Address, addrs)
		}
		tap, err := link.ByName("tap_eth0")
		if err != nil {
			return fmt.Errorf("tap_eth0: %w", err)
		}
		if tap.Type() != "tuntap" {
			return fmt.Errorf("tap_eth0 is a %s, want tuntap", tap.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("container netns %s: %v", nsPath, err)
	}

	if _, err := run("rm", "-f", "-t", "0", id); err != nil {
		t.Fatal(err)
	}
	if testutil.FileExists(hint.Path(e.stateDir, id, "eth0")) {
		t.Fatal("hint file left after podman rm")
	}
	testutil.AssertSameHost(t, before, dirs, e.bridge)
}

// podmanBusyboxRootfs writes a rootfs tar: /bin/busybox and the applets sh,
// ip and sleep as symlinks, plus the usual mount points.
func podmanBusyboxRootfs(t *testing.T, path string) {
	t.Helper()
	bb, err := os.ReadFile(podmanBusybox)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	now := time.Now()
	for _, d := range []string{"bin", "dev", "etc", "proc", "run", "sys", "tmp"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bb); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ip", "sleep"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// podmanUnmountUnder lazily unmounts every mount point under dir, deepest first.
func podmanUnmountUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := podmanUnescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Logf("cleanup: unmount %s: %v", mp, err)
		}
	}
}

// podmanUnescapeMountinfo undoes mountinfo's octal escapes (\040 for a space...).
func podmanUnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
