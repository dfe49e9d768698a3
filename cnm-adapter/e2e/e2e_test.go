// Package e2e drives vmcni-cnm with the real dockerd from Debian: a private
// daemon (own data-root, exec-root and socket), a locally imported busybox
// image, containers on a vmcni network, and an adapter killed with SIGKILL
// in the middle.
package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/internal/hostcheck"
	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(probeEnv); sock != "" { // the test binary as the socket prober
		os.Exit(probe(sock))
	}
	testutil.Main(m)
}

// env is one test's dockerd, adapter and directories.
type env struct {
	t          *testing.T
	dir        string // short, under /tmp: socket paths must fit sun_path
	dockerSock string
	dockerd    *exec.Cmd
	adapter    *exec.Cmd
	// stopRegistered is set once stopAdapter is a cleanup.
	stopRegistered bool
	// umask000 starts the adapter under umask 000.
	umask000   bool
	adapterBin string
	cniPath    string
	name       string // driver name = socket name
	stateDir   string
	dirs       []string // snapshot dirs: plugin state, IPAM leases, libcni cache
}

func requireDocker(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, bin := range []string{"dockerd", "docker", "containerd", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not found; apt-get install -y --no-install-recommends docker.io", bin)
		}
	}
	if !testutil.FileExists("/bin/busybox") {
		t.Skip("skipped: /bin/busybox missing; apt-get install -y busybox-static")
	}
}

func newEnv(t *testing.T) *env {
	requireDocker(t)
	hostcheck.Exclusive(t)
	dir, err := os.MkdirTemp("/tmp", "vmctd")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, dockerSock: filepath.Join(dir, "docker.sock"), name: testutil.UniqueName("vmct")}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e.cniPath = testutil.Binaries(t)
	e.adapterBin = filepath.Join(dir, "vmcni-cnm")
	build := exec.Command("go", "build", "-o", e.adapterBin, "./cnm-adapter/cmd/vmcni-cnm")
	build.Dir = testutil.ModuleRoot(t)
	if out, berr := build.CombinedOutput(); berr != nil {
		t.Fatalf("build vmcni-cnm: %v\n%s", berr, out)
	}
	e.stateDir = filepath.Join(dir, "cnm")
	for _, sub := range []string{"plugin-state", "ipam", "cnm/cache"} {
		p := filepath.Join(dir, sub)
		if err = os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		e.dirs = append(e.dirs, p)
	}
	e.startDockerd()
	return e
}

func (e *env) startDockerd() {
	t := e.t
	logf, err := os.Create(filepath.Join(e.dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dockerd",
		"--data-root", filepath.Join(e.dir, "data"), "--exec-root", filepath.Join(e.dir, "exec"),
		"-H", "unix://"+e.dockerSock, "--pidfile", filepath.Join(e.dir, "docker.pid"),
		"--storage-driver", "vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--oom-score-adjust=0", "--userland-proxy=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	e.dockerd = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
		unmountUnder(e.dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, perr := e.dockerErr("version"); perr == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not come up:\n%s", tail(log))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts whatever dockerd left mounted below dir
// (netns bind mounts, vfs layers) so the directory can be removed.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (e *env) startAdapter() {
	t := e.t
	logf, err := os.OpenFile(filepath.Join(e.dir, "adapter.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--name", e.name, "--state-dir", e.stateDir,
		"--cni-path", e.cniPath, "--plugin-state-dir", e.dirs[0], "--ipam-data-dir", e.dirs[1],
		"--docker-host", "unix://" + e.dockerSock, "--name-prefix", "vmct", "--grace", "3s",
		"--reconcile-interval", "0", "--log-level", "debug"}
	cmd := exec.Command(e.adapterBin, args...)
	if e.umask000 { // the worst umask a daemon can inherit (sh execs the adapter: same pid)
		cmd = exec.Command("/bin/sh", append([]string{"-c", `umask 000 && exec "$0" "$@"`, e.adapterBin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = logf.Close() // the adapter has its own copy
	if err != nil {
		t.Fatalf("start adapter: %v", err)
	}
	e.adapter = cmd
	// Serving once a connection is accepted (a killed adapter's socket
	// file stays until the new one replaces it).
	sock := filepath.Join("/run/docker/plugins", e.name+".sock")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, derr := net.Dial("unix", sock); derr == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("adapter socket %s does not accept connections", sock)
		}
	}
	if !e.stopRegistered {
		// Once: a restart must not stop the adapter before the test's own
		// cleanups (rm -f, network rm) have talked to it.
		e.stopRegistered = true
		t.Cleanup(e.stopAdapter)
	}
}

func (e *env) stopAdapter() {
	if e.adapter == nil {
		return
	}
	_ = e.adapter.Process.Signal(syscall.SIGTERM)
	_ = e.adapter.Wait()
	e.adapter = nil
}

// killAdapter SIGKILLs the adapter's process group (the plugins it runs
// die with it, as with systemd killing the unit's cgroup).
func (e *env) killAdapter() {
	_ = syscall.Kill(-e.adapter.Process.Pid, syscall.SIGKILL)
	_ = e.adapter.Wait()
	e.adapter = nil
}

func (e *env) dockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+e.dockerSock)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func (e *env) docker(args ...string) string {
	e.t.Helper()
	out, err := e.dockerErr(args...)
	if err != nil {
		adapterLog, _ := os.ReadFile(filepath.Join(e.dir, "adapter.log"))
		e.t.Fatalf("docker %s: %v\n%s\nadapter log:\n%s", strings.Join(args, " "), err, out, tail(adapterLog))
	}
	return out
}

// importImage builds a busybox rootfs tarball (busybox + sh, ping, sleep,
// ip links) and imports it: no registry is needed.
func (e *env) importImage() string {
	t := e.t
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		_ = tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	_ = tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	_, _ = tw.Write(bb)
	for _, l := range []string{"sh", "ping", "sleep", "ip"} {
		_ = tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	if err = tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "rootfs.tar")
	if err = os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	image := e.name + ":latest"
	e.docker("import", path, image)
	return image
}

func (e *env) ip(container string) string {
	return e.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container)
}

func (e *env) ping(from, to string) {
	e.t.Helper()
	var out string
	var err error
	for attempt := 0; attempt < 3; attempt++ { // the first ARP on a loaded host
		if out, err = e.dockerErr("exec", from, "ping", "-c1", "-W2", to); err == nil {
			return
		}
	}
	diag, _ := e.dockerErr("exec", from, "sh", "-c", "ip addr; ip route; ip neigh")
	adapterLog, _ := os.ReadFile(filepath.Join(e.dir, "adapter.log"))
	e.t.Fatalf("%s cannot ping %s: %v\n%s\nin the container:\n%s\nadapter log:\n%s", from, to, err, out, diag, tail(adapterLog))
}

// vmBridgeNetwork creates a vm-bridge (tcfilter) network on the adapter,
// with the adapter's IPAM, on a random /24 of 10.<second>.0.0/16 and a
// bridge of its own; the network is removed at cleanup (after the
// containers of cleanups registered later).
func (e *env) vmBridgeNetwork(second int) (netName, bridge, gateway string) {
	subnet := fmt.Sprintf("10.%d.%d.0/24", second, 100+rand.IntN(150))
	gateway = strings.TrimSuffix(subnet, "0/24") + "1"
	bridge = testutil.UniqueName("vmct")
	netName = e.name + "n"
	e.docker("network", "create", "-d", e.name, "--ipam-driver", e.name, "--subnet", subnet,
		"-o", "plugin=vm-bridge", "-o", "mode=tcfilter", "-o", "bridge="+bridge, netName)
	e.t.Cleanup(func() { _, _ = e.dockerErr("network", "rm", netName) })
	return netName, bridge, gateway
}

// TestDockerEndToEnd: network create (vmcni driver and vmcni IPAM), three
// containers, the adapter SIGKILLed (containers keep working), restarted
// (reconciliation keeps live endpoints), two more containers, all five
// reach each other and the gateway, docker_gwbridge never appears, rm -f
// and network rm; then the host is exactly as before and the adapter's
// state is empty.
func TestDockerEndToEnd(t *testing.T) {
	e := newEnv(t)
	image := e.importImage()
	e.startAdapter()
	before := testutil.TakeSnapshot(t, e.dirs)

	netName, bridge, gateway := e.vmBridgeNetwork(213)
	var containers []string
	t.Cleanup(func() {
		for _, c := range containers {
			_, _ = e.dockerErr("rm", "-f", c)
		}
	})
	run := func(i int) {
		c := fmt.Sprintf("%sc%d", e.name, i)
		containers = append(containers, c)
		e.docker("run", "-d", "--name", c, "--network", netName, image, "sleep", "3600")
	}
	for i := 1; i <= 3; i++ {
		run(i)
	}
	e.ping(containers[0], e.ip(containers[1]))

	t.Log("SIGKILL the adapter")
	e.killAdapter()
	e.ping(containers[1], e.ip(containers[2]))
	e.ping(containers[2], gateway)

	t.Log("restart the adapter")
	time.Sleep(3 * time.Second) // older than --grace: reconciliation must keep them by asking Docker
	e.startAdapter()
	time.Sleep(time.Second) // reconciliation runs in the background
	for i := 4; i <= 5; i++ {
		run(i)
	}
	ips := map[string]string{}
	srcNames := map[string]bool{bridge: true} // this test's vmct* links
	for _, c := range containers {
		ep := e.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.EndpointID}}{{end}}", c)
		if len(ep) >= 11 {
			srcNames["vmct"+ep[:11]] = true
		}
		ips[c] = e.ip(c)
		if prefix := strings.TrimSuffix(gateway, "1"); !strings.HasPrefix(ips[c], prefix) {
			t.Fatalf("%s has address %q, not in %s0/24", c, ips[c], prefix)
		}
	}
	for i, c := range containers {
		e.ping(c, gateway)
		e.ping(c, ips[containers[(i+1)%len(containers)]])
	}
	for _, c := range containers[1:] {
		e.ping(containers[0], ips[c])
	}
	if nets := e.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(nets, "docker_gwbridge") {
		t.Fatalf("docker added docker_gwbridge:\n%s", nets)
	}

	for _, c := range containers {
		e.docker("rm", "-f", c)
	}
	containers = nil
	e.docker("network", "rm", netName)
	e.stopAdapter()
	hostcheck.AssertSameHost(t, before, e.dirs, func(name string) bool { return srcNames[name] })
	e.assertStateEmpty()
}
