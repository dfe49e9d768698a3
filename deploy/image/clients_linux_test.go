package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/vmcni/vmcni/internal/testutil"
)

// The real clients: the archive loads into a private dockerd (Docker 20.10
// reads only manifest.json) and into a private containerd through
// "ctr images import" (which reads the OCI layout and names the image from
// io.containerd.image.name), and both name it the full ref.

// requireTools skips t unless it runs as root and every tool is installed.
func requireTools(t *testing.T, pkg string, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipped: needs root to run a private %s", tools[0])
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not installed; apt-get install -y --no-install-recommends %s", tool, pkg)
		}
	}
}

// daemon starts name with args in its own process group and its own
// private mount namespace, logging to dir/name.log, and waits until ready
// succeeds. Every mount the daemon makes (layers, temporary mounts) lives
// in that namespace and goes away with it, so nothing is ever mounted
// under dir here. Cleanup stops the group (SIGTERM, then SIGKILL after
// 30s) and removes dir.
func daemon(t *testing.T, dir, name string, ready func() error, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Unshareflags: syscall.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = logf.Close()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(logPath))
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited:\n%s", name, tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s: %v\n%s", name, err, tail(logPath))
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// command runs name with args (and env added) and returns its combined
// output, failing t on error.
func command(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := try(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func try(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// shortDir is a directory under /tmp whose paths fit a socket address;
// the daemon's cleanup removes it.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vmcnii")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDockerLoad(t *testing.T) {
	requireTools(t, "docker.io", "dockerd", "docker")
	dir := shortDir(t)
	env := []string{"DOCKER_HOST=unix://" + filepath.Join(dir, "docker.sock")}
	daemon(t, dir, "dockerd", func() error { _, err := try(env, "docker", "version"); return err },
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", strings.TrimPrefix(env[0], "DOCKER_HOST="), "--pidfile", filepath.Join(dir, "docker.pid"),
		"--storage-driver", "vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--oom-score-adjust=0", "--userland-proxy=false")
	t.Logf("dockerd %s", strings.TrimSpace(command(t, env, "docker", "version", "--format", "{{.Server.Version}}")))

	// Docker shows Docker Hub names in their familiar form.
	for ref, shown := range map[string]string{
		testRef:                               strings.TrimPrefix(testRef, "docker.io/"),
		"localhost:5000/vmcni/vmcni-test:dev": "localhost:5000/vmcni/vmcni-test:dev",
	} {
		s := testSpec(t)
		s.Ref, s.Cmd = ref, []string{ref} // two images, two IDs
		archive := writeTestImage(t, s)
		if out := command(t, env, "docker", "load", "-i", archive); !strings.Contains(out, "Loaded image: "+shown+"\n") {
			t.Errorf("docker load said %q, want %q", out, "Loaded image: "+shown)
		}
		got := strings.TrimSpace(command(t, env, "docker", "image", "inspect", ref,
			"--format", "{{.Id}} {{json .RepoTags}} {{json .Config.Entrypoint}} {{.Os}}/{{.Architecture}}"))
		_, cfg := digests(t, archive)
		want := fmt.Sprintf(`%s ["%s"] ["/entry"] linux/amd64`, cfg, shown)
		if got != want {
			t.Errorf("docker image inspect %s = %q, want %q", ref, got, want)
		}
	}
}

func TestCtrImport(t *testing.T) {
	requireTools(t, "containerd", "containerd", "ctr")
	s := testSpec(t)
	archive := writeTestImage(t, s)

	dir := shortDir(t)
	cfg := testutil.ContainerdConfig{Dir: dir, NoCRI: true}
	cfgPath, err := cfg.Write()
	if err != nil {
		t.Fatal(err)
	}
	sock := cfg.Socket()
	daemon(t, dir, "containerd", func() error { _, err := try(nil, "ctr", "-a", sock, "version"); return err },
		"--config", cfgPath)

	ctr := func(args ...string) string {
		return command(t, nil, "ctr", append([]string{"-a", sock, "-n", "k8s.io"}, args...)...)
	}
	ctr("images", "import", "--snapshotter", "native", archive)
	names := strings.Fields(ctr("images", "ls", "-q"))
	if len(names) != 1 || names[0] != testRef {
		t.Fatalf("containerd images after import: %v, want [%s]", names, testRef)
	}
	// Imported from the OCI layout (a docker-archive import would convert
	// to a Docker manifest of another digest).
	manifest, _ := digests(t, archive)
	if out := ctr("images", "ls"); !strings.Contains(out, "application/vnd.oci.image.manifest.v1+json "+manifest) {
		t.Errorf("ctr images ls does not show the OCI manifest %s:\n%s", manifest, out)
	}
	// Unpacked for the native snapshotter: the config's layer was applied.
	if out := ctr("images", "check"); !strings.Contains(out, "complete") {
		t.Errorf("ctr images check: %s", out)
	}
	if out := ctr("snapshots", "--snapshotter", "native", "ls"); strings.Count(out, "\n") < 2 {
		t.Errorf("no snapshot after import:\n%s", out)
	}
}

// digests returns the manifest and config digests of archive's OCI view.
func digests(t *testing.T, archive string) (manifest, config string) {
	t.Helper()
	dir := t.TempDir()
	untar(t, archive, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests[0].Digest.String(), cfg.String()
}
