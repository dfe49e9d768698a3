package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Version is the Kubernetes release the cluster runs. Staging modules
// (k8s.io/api, k8s.io/client-go, ...) are pinned to the matching v0 tag.
const Version = "v1.33.13"

// Components are the Kubernetes binaries Build produces.
var Components = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}

// DefaultCacheDir holds built binaries across runs, keyed by version.
// VMCNI_KUBE_CACHE overrides it.
const DefaultCacheDir = "/var/cache/vmcni/kube"

// CacheDir returns the directory Build caches under.
func CacheDir() string {
	if d := os.Getenv("VMCNI_KUBE_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// stagingVersion maps v1.X.Y to the staging modules' v0.X.Y.
func stagingVersion() string { return "v0" + strings.TrimPrefix(Version, "v1") }

// Build returns a directory holding every binary of Components for
// Version, building them from the Go module proxy the first time: a
// scratch module requires k8s.io/kubernetes and replaces each of its
// staging modules (read from Kubernetes's own go.mod) with the matching
// published version. Concurrent callers (other test processes) wait on a
// lock file; a warm cache returns at once.
func Build(ctx context.Context, logf func(string, ...any)) (string, error) {
	root := filepath.Join(CacheDir(), Version)
	bin := filepath.Join(root, "bin")
	if complete(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %q: %w", lock.Name(), err)
	}
	if complete(bin) {
		return bin, nil
	}
	start := time.Now()
	logf("building Kubernetes %s into %s (cold: about 5 minutes on 2 cores)", Version, bin)
	src := filepath.Join(root, "src")
	if err = os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=1")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = src, env
		out, runErr := cmd.CombinedOutput()
		if runErr != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), runErr, tail(out, 4000))
		}
		return nil
	}
	gomod, err := scratchGoMod(ctx)
	if err != nil {
		return "", err
	}
	if err = os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	pkgs := make([]string, len(Components))
	for i, c := range Components {
		pkgs[i] = "k8s.io/kubernetes/cmd/" + c
	}
	get := []string{"get"}
	for _, p := range pkgs {
		get = append(get, p+"@"+Version)
	}
	if err = run(get...); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	_ = os.RemoveAll(tmp)
	ldflags := "-s -w"
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		minor := strings.Split(Version, ".")[1]
		ldflags += fmt.Sprintf(" -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean",
			pkg, Version, pkg, pkg, minor, pkg)
	}
	if err = run(append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", tmp + "/"}, pkgs...)...); err != nil {
		return "", err
	}
	if err = os.Rename(tmp, bin); err != nil {
		return "", err
	}
	logf("built Kubernetes %s in %s", Version, time.Since(start).Round(time.Second))
	return bin, nil
}

func complete(bin string) bool {
	for _, c := range Components {
		if fi, err := os.Stat(filepath.Join(bin, c)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

var stagingReplace = regexp.MustCompile(`^\s*(k8s\.io/[^\s]+)\s+=>\s+\./staging/`)

// scratchGoMod renders the go.mod of the build module: Kubernetes itself
// plus one replace line per staging module named in its go.mod.
func scratchGoMod(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "k8s.io/kubernetes@"+Version)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("download k8s.io/kubernetes@%s: %w", Version, err)
	}
	m := regexp.MustCompile(`"GoMod":\s*"([^"]+)"`).FindSubmatch(out)
	if m == nil {
		return "", errors.New("go mod download printed no GoMod path")
	}
	f, err := os.Open(string(m[1]))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "module vmcni.test/kubebuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", Version)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := stagingReplace.FindStringSubmatch(sc.Text()); m != nil {
			fmt.Fprintf(&b, "\t%s => %s %s\n", m[1], m[1], stagingVersion())
			n++
		}
	}
	if err = sc.Err(); err != nil {
		return "", err
	}
	if n == 0 {
		return "", fmt.Errorf("no staging replace lines in %s", m[1])
	}
	b.WriteString(")\n")
	return b.String(), nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
