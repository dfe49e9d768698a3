package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Reference plugin packages built next to vmcni's (versions pinned in
// go.mod through internal/tools).
var referencePackages = []string{
	"github.com/containernetworking/plugins/plugins/main/bridge",
	"github.com/containernetworking/plugins/plugins/main/loopback",
	"github.com/containernetworking/plugins/plugins/main/ptp",
	"github.com/containernetworking/plugins/plugins/main/tap",
	"github.com/containernetworking/plugins/plugins/meta/tuning",
	"github.com/containernetworking/plugins/plugins/meta/bandwidth",
	"github.com/containernetworking/plugins/plugins/meta/portmap",
	"github.com/containernetworking/plugins/plugins/meta/firewall",
	"github.com/containernetworking/plugins/plugins/ipam/host-local",
	"github.com/containernetworking/plugins/plugins/ipam/static",
	"github.com/containernetworking/cni/cnitool",
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// ModuleRoot returns the directory of vmcni's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Binaries builds every vmcni plugin (./plugins/...) and the reference
// plugins into one directory, once per test process, and returns it: use it
// as CNI_PATH.
//
// Where there is no Go toolchain (inside the device lab guest),
// VMCNI_BIN_DIR names a directory of binaries built beforehand, which is
// returned as is.
func Binaries(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("VMCNI_BIN_DIR"); dir != "" {
		return dir
	}
	binOnce.Do(func() {
		root := ModuleRoot(t)
		binDir, binErr = os.MkdirTemp("", "vmcni-bin")
		if binErr != nil {
			return
		}
		args := append([]string{"build", "-o", binDir + "/", "./plugins/...", "./sriov/sriovsim/cmd/vm-sriov-sim"}, referencePackages...)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = &buildError{out: string(out), err: err}
		}
	})
	if binErr != nil {
		t.Fatalf("build plugins: %v", binErr)
	}
	return binDir
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// Main runs the package's tests and removes the binaries built for them.
// Call it from TestMain.
func Main(m interface{ Run() int }) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}
