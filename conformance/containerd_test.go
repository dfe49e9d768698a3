package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/deploy/image"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
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
	testutil.RequiresContainerd(t)
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

	ctrd := testutil.StartContainerd(t, testutil.ContainerdConfig{
		Dir: dir, SandboxImage: ctrdPauseImage, CNIBinDir: binDir, CNIConfDir: confDir,
	})
	ctrdImportPause(t, ctrd)
	sock := ctrd.Socket()

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

// ctrdImportPause builds the static vmcni-install binary as the sandbox's
// only process ("/pause keepalive" sleeps until SIGTERM and exits 0), packs
// it with deploy/image and imports it into c's k8s.io namespace as
// ctrdPauseImage.
func ctrdImportPause(t *testing.T, c *testutil.Containerd) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	ctrdRun(t, 3*time.Minute, testutil.ModuleRoot(t), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"},
		"go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./deploy/cmd/vmcni-install")
	archive := filepath.Join(dir, "pause.tar")
	if err := image.Write(archive, image.Spec{
		Ref:        ctrdPauseImage,
		Files:      []image.File{{Path: "/pause", Mode: 0o755, Source: bin}},
		Entrypoint: []string{"/pause", "keepalive"},
	}); err != nil {
		t.Fatal(err)
	}
	c.Ctr("-n", "k8s.io", "images", "import", archive)
}
