package testutil

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a private containerd started by StartContainerd for one
// test and stopped at its end.
type Containerd struct {
	ContainerdConfig
	// Log is the daemon's log file, Dir/containerd.log; its tail is logged
	// when the test fails.
	Log string
	t   testing.TB
}

// RequiresContainerd skips t unless it runs as root with containerd, ctr
// and runc installed.
func RequiresContainerd(t testing.TB) {
	t.Helper()
	RequiresRoot(t)
	for _, bin := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not installed (apt-get install containerd)", bin)
		}
	}
}

// StartContainerd writes cfg's config.toml, starts containerd with it and
// waits (up to 30s) until "ctr version" answers on cfg.Socket(). Cleanup
// stops the daemon (SIGTERM, SIGKILL after 15s), kills what it left
// running (the init process of every task bundle under cfg.State(), and
// every process whose command line names cfg.Dir, such as the runc shims),
// removes the shims' sockets and detaches every mount under cfg.Dir. It
// does not remove cfg.Dir: use a t.TempDir() (created before this call, so
// it is removed after the unmounts).
func StartContainerd(t testing.TB, cfg ContainerdConfig) *Containerd {
	t.Helper()
	RequiresContainerd(t)
	path, err := cfg.Write()
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{ContainerdConfig: cfg, Log: filepath.Join(cfg.Dir, "containerd.log"), t: t}
	logFile, err := os.Create(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
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
		c.killLeftovers()
		unmountUnder(cfg.Dir)
		if t.Failed() {
			t.Logf("containerd log (tail):\n%s", c.logTail(8000))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "ctr", "-a", cfg.Socket(), "version").Run()
		cancel()
		if err == nil {
			return c
		}
		select {
		case <-exited:
			t.Fatalf("containerd exited:\n%s", c.logTail(8000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready after 30s: %v\n%s", err, c.logTail(8000))
		}
	}
}

// Ctr runs "ctr -a <socket> args..." (with a 2-minute timeout) and returns
// its stdout; it fails the test with the output on error.
func (c *Containerd) Ctr(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", c.Socket()}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("ctr %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// logTail returns the last n bytes of the daemon's log.
func (c *Containerd) logTail(n int) string {
	b, _ := os.ReadFile(c.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// killLeftovers kills what the stopped daemon left running (shims and
// the containers they started outlive containerd): each bundle's init
// process under State, then, until none is left (five rounds at most),
// every process whose command line names Dir. It removes the shims'
// sockets under /run/containerd/s.
func (c *Containerd) killLeftovers() {
	bundles, _ := filepath.Glob(filepath.Join(c.State(), "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		if data, err := os.ReadFile(filepath.Join(b, "init.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if data, err := os.ReadFile(filepath.Join(b, "address")); err == nil {
			addr := strings.TrimPrefix(strings.TrimSpace(string(data)), "unix://")
			if strings.HasPrefix(addr, "/run/containerd/s/") {
				defer os.Remove(addr)
			}
		}
	}
	for i := 0; i < 5 && killNaming(c.Dir+"/") > 0; i++ {
		time.Sleep(300 * time.Millisecond)
	}
}

// killNaming sends SIGKILL to every process but this one whose command
// line contains needle and returns how many it signalled.
func killNaming(needle string) int {
	self, n := os.Getpid(), 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == self || pid <= 1 {
			continue
		}
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(needle)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}

// unmountUnder detaches every mount point at or under dir, deepest first.
func unmountUnder(dir string) {
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
