package conformance_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/link"
	"github.com/vmcni/vmcni/pkg/netns"
	"github.com/vmcni/vmcni/pkg/testutil"
)

// ctrdCrictlVersion is the cri-tools release whose crictl drives containerd.
const ctrdCrictlVersion = "v1.30.0"

// ctrdPauseImage is the name of the locally built sandbox image.
const ctrdPauseImage = "vmcni.test/pause:v1"

// TestContainerdCRI runs vm-bridge (tcfilter) under a real CRI runtime: a
// private containerd 1.6 (its own root, state and socket) driven by crictl
// v1.30.0. runp makes containerd's CRI plugin call CNI ADD; the pod IP
// containerd reports is the one vm-bridge allocated, the sandbox netns holds
// eth0 and tap_eth0, and the hint file exists. stopp + rmp run CNI DEL and
// the host is as before.
func TestContainerdCRI(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, bin := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not installed (apt-get install containerd)", bin)
		}
	}
	e := newEnv(t)
	crictl := ctrdCrictl(t)
	dir := t.TempDir()

	// CNI: vmcni's plugins plus the reference loopback plugin, which
	// containerd's CRI plugin always runs for lo.
	binDir := filepath.Join(dir, "cni-bin")
	confDir := filepath.Join(dir, "cni-conf")
	for _, d := range []string{binDir, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(e.bin)
	for _, ent := range entries {
		_ = os.Symlink(filepath.Join(e.bin, ent.Name()), filepath.Join(binDir, ent.Name()))
	}
	ctrdRun(t, 3*time.Minute, testutil.ModuleRoot(t), nil, "go", "build", "-o", filepath.Join(binDir, "loopback"),
		"github.com/containernetworking/plugins/plugins/main/loopback")
	netName := "vmct-containerd"
	// containerd 1.6 vendors libcni 1.1, which knows CNI spec versions up to 1.0.0.
	netConf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": netName, "plugins": []map[string]any{e.vmBridge("tcfilter")}})
	if err := os.WriteFile(filepath.Join(confDir, "10-vmct.conflist"), netConf, 0o644); err != nil {
		t.Fatal(err)
	}

	dirs := []string{e.stateDir, e.ipamDir}
	before := testutil.TakeSnapshot(t, dirs, e.bridge)

	sock := ctrdStart(t, dir, binDir, confDir)
	ctrdImportPause(t, dir, sock)

	crictlCfg := filepath.Join(dir, "crictl.yaml")
	if err := os.WriteFile(crictlCfg, []byte("runtime-endpoint: unix://"+sock+"\nimage-endpoint: unix://"+sock+"\ntimeout: 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cri := func(args ...string) string {
		t.Helper()
		full := append([]string{"--config", crictlCfg, "--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock, "--timeout", "60s"}, args...)
		return ctrdRun(t, 2*time.Minute, "", nil, crictl, full...)
	}

	podCfg := filepath.Join(dir, "pod.json")
	uid := testutil.UniqueName("uid")
	pod := map[string]any{
		"metadata": map[string]any{"name": testutil.UniqueName("vmctpod"), "namespace": "vmct", "uid": uid, "attempt": 0},
		"linux":    map[string]any{},
	}
	if err := os.WriteFile(podCfg, mustJSON(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	podID := strings.TrimSpace(cri("runp", podCfg))
	if podID == "" {
		t.Fatal("crictl runp printed no pod ID")
	}
	removed := false
	var nsPath string
	t.Cleanup(func() {
		if removed {
			return
		}
		for _, args := range [][]string{{"stopp", podID}, {"rmp", "-f", podID}} {
			full := append([]string{"--config", crictlCfg, "--runtime-endpoint", "unix://" + sock, "--timeout", "30s"}, args...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = exec.CommandContext(ctx, crictl, full...).Run()
			cancel()
		}
		// containerd did not clean up: drop the netns it mounted outside dir.
		if strings.HasPrefix(nsPath, "/var/run/netns/cni-") && testutil.FileExists(nsPath) {
			_ = syscall.Unmount(nsPath, syscall.MNT_DETACH)
			_ = os.Remove(nsPath)
		}
	})

	var inspect struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	out := cri("inspectp", podID)
	if err := json.Unmarshal([]byte(out), &inspect); err != nil {
		t.Fatalf("crictl inspectp: %v\n%s", err, out)
	}
	if inspect.Status.State != "SANDBOX_READY" {
		t.Fatalf("sandbox state %q, want SANDBOX_READY", inspect.Status.State)
	}
	for _, n := range inspect.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" {
			nsPath = n.Path
		}
	}
	if nsPath == "" {
		t.Fatalf("inspectp shows no network namespace path:\n%s", out)
	}

	h, err := hint.Read(e.stateDir, podID, "eth0")
	if err != nil {
		t.Fatalf("vm-bridge hint for the sandbox: %v", err)
	}
	if h.Kind != hint.KindTap || h.Tap == nil || h.Tap.Name != "tap_eth0" {
		t.Fatalf("hint is not a tap_eth0 tap: %+v", h)
	}
	if len(h.Guest.IPs) == 0 {
		t.Fatalf("hint has no guest IP: %+v", h.Guest)
	}
	hintIP := strings.Split(h.Guest.IPs[0].Address, "/")[0]
	if inspect.Status.Network.IP != hintIP {
		t.Fatalf("containerd reports pod IP %q, vm-bridge allocated %q", inspect.Status.Network.IP, hintIP)
	}
	if !testutil.FileExists(filepath.Join(e.ipamDir, netName, hintIP)) {
		t.Fatalf("host-local has no reservation %s in %s", hintIP, filepath.Join(e.ipamDir, netName))
	}
	if err := netns.Do(nsPath, func() error {
		for _, name := range []string{"eth0", "tap_eth0"} {
			if _, err := link.ByName(name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("sandbox netns %s: %v", nsPath, err)
	}

	cri("stopp", podID)
	cri("rmp", podID)
	removed = true
	if testutil.FileExists(hint.Path(e.stateDir, podID, "eth0")) {
		t.Fatal("hint file left after stopp + rmp")
	}
	if testutil.FileExists(nsPath) {
		t.Fatalf("sandbox netns %s left after rmp", nsPath)
	}
	testutil.AssertSameHost(t, before, dirs, e.bridge)
}

// ctrdRun runs name with args under a timeout and returns its stdout; it
// fails t with the output on error.
func ctrdRun(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// ctrdCrictl returns crictl v1.30.0, built once per machine (cached under
// the temp dir) from a copy of the module without vendor/, with -mod=mod.
func ctrdCrictl(t *testing.T) string {
	t.Helper()
	out := filepath.Join(os.TempDir(), "vmcni-crictl-"+ctrdCrictlVersion, "crictl")
	if testutil.FileExists(out) {
		return out
	}
	mod := "sigs.k8s.io/cri-tools@" + ctrdCrictlVersion
	data := ctrdRun(t, 5*time.Minute, "", []string{"GOFLAGS=-mod=mod"}, "go", "mod", "download", "-json", mod)
	var info struct{ Dir string }
	if err := json.Unmarshal([]byte(data), &info); err != nil || info.Dir == "" {
		t.Fatalf("download %s: no module dir in %s", mod, data)
	}
	src := t.TempDir()
	ctrdRun(t, time.Minute, "", nil, "cp", "-r", info.Dir+"/.", src)
	ctrdRun(t, time.Minute, "", nil, "chmod", "-R", "u+w", src)
	if err := os.RemoveAll(filepath.Join(src, "vendor")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	ctrdRun(t, 10*time.Minute, src, []string{"GOFLAGS=-mod=mod", "GOWORK=off"}, "go", "build", "-o", out+".tmp", "./cmd/crictl")
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ctrdStart starts a private containerd with everything under dir and
// returns its socket. Cleanup kills it (and the shims and sandboxes it
// started) and unmounts whatever is left mounted under dir.
func ctrdStart(t *testing.T, dir, cniBin, cniConf string) string {
	t.Helper()
	root := filepath.Join(dir, "root")
	state := filepath.Join(dir, "state")
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, root, state, sock, sock+".ttrpc", filepath.Join(dir, "opt"), ctrdPauseImage, filepath.Join(dir, "runc"), cniBin, cniConf)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		ctrdKillShims(state, sock)
		ctrdUnmountUnder(dir)
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("containerd log (tail):\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "ctr", "-a", sock, "version").Run()
		cancel()
		if err == nil {
			return sock
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("containerd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("containerd not ready after 30s: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ctrdKillShims kills what the private containerd at sock left running
// (they outlive it): each bundle's init process under state, and the runc
// shims started with "-address sock"; it removes the shims' sockets.
func ctrdKillShims(state, sock string) {
	killed := false
	bundles, _ := filepath.Glob(filepath.Join(state, "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		if data, err := os.ReadFile(filepath.Join(b, "init.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = true
			}
		}
		if data, err := os.ReadFile(filepath.Join(b, "address")); err == nil {
			addr := strings.TrimPrefix(strings.TrimSpace(string(data)), "unix://")
			if strings.HasPrefix(addr, "/run/containerd/s/") {
				defer os.Remove(addr)
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("\x00-address\x00"+sock+"\x00")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = true
		}
	}
	if killed {
		time.Sleep(500 * time.Millisecond)
	}
}

// ctrdUnmountUnder detaches every mount point under dir, deepest first.
func ctrdUnmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// ctrdPauseSource is the sandbox's only process: it sleeps until SIGTERM or
// SIGINT and exits 0.
const ctrdPauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	os.Exit(0)
}
`

// ctrdImportPause builds a static pause binary, packs it as a
// docker-archive tar and imports it into containerd's k8s.io namespace.
func ctrdImportPause(t *testing.T, dir, sock string) {
	t.Helper()
	src := filepath.Join(dir, "pause-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(ctrdPauseSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module pause\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(src, "pause")
	ctrdRun(t, 3*time.Minute, src, []string{"CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOOS=linux", "GOARCH=amd64"},
		"go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	pause, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	tarBytes := func(files []ctrdTarFile) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, f := range files {
			hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(f.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	layer := tarBytes([]ctrdTarFile{{name: "pause", mode: 0o755, data: pause}})
	layerSum := sha256.Sum256(layer)
	layerDigest := hex.EncodeToString(layerSum[:])
	config := mustJSON(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config":       map[string]any{"Entrypoint": []string{"/pause"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerDigest}},
	})
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := layerDigest + "/layer.tar"
	manifest := mustJSON([]map[string]any{{"Config": configName, "RepoTags": []string{ctrdPauseImage}, "Layers": []string{layerName}}})
	archive := tarBytes([]ctrdTarFile{
		{name: configName, mode: 0o644, data: config},
		{name: layerName, mode: 0o644, data: layer},
		{name: "manifest.json", mode: 0o644, data: manifest},
	})
	archivePath := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(archivePath, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	ctrdRun(t, 2*time.Minute, "", nil, "ctr", "-a", sock, "-n", "k8s.io", "images", "import", archivePath)
}

type ctrdTarFile struct {
	name string
	mode int64
	data []byte
}
