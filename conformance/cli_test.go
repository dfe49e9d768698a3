package conformance_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/conformance"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// buildCLI builds the vmcni-conformance command.
func buildCLI(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vmcni-conformance")
	cmd := exec.Command("go", "build", "-o", out, "./conformance/cmd/vmcni-conformance")
	cmd.Dir = testutil.ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vmcni-conformance: %v\n%s", err, b)
	}
	return out
}

// writeJSON writes v as JSON to a new file in dir.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, mustJSON(v), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCLI runs the command as a third party would, on vm-sriov in vfio
// mode with a device pool file and a state command (the VFIO group nodes
// must be the same before and after each check): exit 0, a readable report on stdout, a JSON
// report whose checks all pass or are skipped. A pool that is not a JSON
// array of objects is a usage error (exit 2) before any check runs.
func TestCLI(t *testing.T) {
	e := newEnv(t)
	cli := buildCLI(t)
	k := sriovsim.Start(t, sriovsim.Options{VFs: 4})
	dir := t.TempDir()
	conf := map[string]any{"type": sriovsim.PluginType, "mode": "vfio", "sysfsRoot": k.Root, "stateDir": e.stateDir,
		"bindTimeout": "3s", "capabilities": map[string]bool{"deviceID": true}}
	list := writeJSON(t, dir, "net.conflist", json.RawMessage(conflist("vmct-cli", conf)))
	var pool []map[string]any
	for i := range 4 {
		pool = append(pool, map[string]any{"deviceID": sriovsim.VFAddr(i)})
	}
	poolFile := writeJSON(t, dir, "devices.json", pool)
	report := filepath.Join(dir, "report.json")

	cmd := exec.Command(cli, "-bin", e.bin, "-conflist", list, "-capability-args-pool", poolFile,
		"-watch", e.stateDir, "-parallel", "3", "-json", report, "-state-cmd", "ls -1 "+k.Abs("dev/vfio"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vmcni-conformance: %v\nstdout:\n%s", err, out)
	}
	if !strings.Contains(string(out), "0 failed") {
		t.Fatalf("readable report does not say 0 failed:\n%s", out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep conformance.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if len(rep.Checks) != len(conformance.Checks) || !rep.Passed() {
		t.Fatalf("JSON report: %d checks, passed %v: %s", len(rep.Checks), rep.Passed(), data)
	}
	if c, _ := rep.Check(conformance.CheckConcurrency); c.Status != conformance.Pass {
		t.Fatalf("concurrency with a 4-device pool: %+v", c)
	}

	bad := writeJSON(t, dir, "bad.json", map[string]any{"deviceID": "not a list"})
	err = exec.Command(cli, "-bin", e.bin, "-conflist", list, "-capability-args-pool", bad).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("a pool that is not an array: want exit 2, got %v", err)
	}
}
