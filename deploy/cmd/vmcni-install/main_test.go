package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// srcDirs makes a plugin directory with one binary and a conflist
// directory with one conflist.
func srcDirs(t *testing.T) (bin, conf string) {
	t.Helper()
	root := t.TempDir()
	bin, conf = filepath.Join(root, "bin"), filepath.Join(root, "config")
	for p, data := range map[string]string{filepath.Join(bin, "vm-bridge"): "elf", filepath.Join(conf, "a.conflist"): "{}"} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bin, conf
}

func TestRunInstallsWhereFlagsAndEnvSay(t *testing.T) {
	bin, conf := srcDirs(t)
	dst := t.TempDir()
	env := map[string]string{"BIN_DIR": filepath.Join(dst, "env-bin"), "CONF_DIR": filepath.Join(dst, "env-conf")}
	var stdout, stderr bytes.Buffer
	// -conf-dir overrides CONF_DIR; BIN_DIR applies.
	code := run([]string{"-src-bin", bin, "-src-conf", conf, "-conf-dir", filepath.Join(dst, "flag-conf")},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "vmcni: installed vm-bridge into " + env["BIN_DIR"] + ", a.conflist into " + filepath.Join(dst, "flag-conf") + "\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	for _, p := range []string{filepath.Join(env["BIN_DIR"], "vm-bridge"), filepath.Join(dst, "flag-conf", "a.conflist")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-src-bin", filepath.Join(t.TempDir(), "none"), "-bin-dir", t.TempDir()}, 1, "vmcni-install: list binaries: open "},
		{[]string{"install", "now"}, 2, `unexpected arguments ["install" "now"]`},
		{[]string{"-nope"}, 2, "flag provided but not defined: -nope"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, noEnv, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestBinary builds the static binary and runs it as the DaemonSet does:
// an install, then keepalive stopped by SIGTERM (and by SIGINT).
func TestBinary(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "vmcni-install")
	build := exec.Command("go", "build", "-trimpath", "-o", exe, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, conf := srcDirs(t)
	dst := t.TempDir()
	cmd := exec.Command(exe, "-src-bin", bin, "-src-conf", conf)
	cmd.Env = append(os.Environ(), "BIN_DIR="+filepath.Join(dst, "bin"), "CONF_DIR="+filepath.Join(dst, "conf"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "vmcni: installed vm-bridge into ") {
		t.Fatalf("install: %v: %s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { keepalive(t, exe, sig) })
	}
}

// keepalive starts "exe keepalive", waits for it to say it is waiting,
// sends sig and expects exit status 0 soon after.
func keepalive(t *testing.T, exe string, sig syscall.Signal) {
	cmd := exec.Command(exe, "keepalive")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	line, _ := bufio.NewReader(out).ReadString('\n')
	go func() { exited <- cmd.Wait() }()
	if !strings.HasPrefix(line, "vmcni: keepalive") {
		_ = cmd.Process.Kill()
		t.Fatalf("first line %q, want the keepalive line", line)
	}
	select {
	case err := <-exited:
		t.Fatalf("keepalive exited before any signal: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("keepalive after %v: %v, want exit status 0", sig, err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("keepalive still running 10s after %v", sig)
	}
}
