package devlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
)

// build runs `go <args...>` at the module root with cgo off: the guest has
// no C library.
func build(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = testutil.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// BuildTest compiles the tests of package pkg (e.g. "./sriov") into a
// static test binary and returns its path.
func BuildTest(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".test")
	build(t, "test", "-c", "-o", out, pkg)
	return out
}

// BuildCommands builds packages (main packages: vmcni's plugins, the
// reference plugins, vmcni-conformance) into one directory of static
// binaries and returns it.
func BuildCommands(t testing.TB, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	build(t, append([]string{"build", "-trimpath", "-o", dir + "/"}, pkgs...)...)
	return dir
}

// Dir returns the files of a directory as Run.Files entries under prefix.
func Dir(t testing.TB, dir, prefix string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		files[prefix+"/"+e.Name()] = filepath.Join(dir, e.Name())
	}
	return files
}

// GoTests boots the lab once, runs the Go test binary testBin there with
// -test.run pattern, and replays the outcome on the host: one subtest per
// top-level test the guest ran, carrying that test's output and verdict.
// files are extra Run.Files (e.g. Dir(t, bins, "bin")).
func (l *Lab) GoTests(t *testing.T, testBin, pattern string, files map[string]string) {
	t.Helper()
	all := map[string]string{"lab.test": testBin}
	for k, v := range files {
		all[k] = v
	}
	res := l.Run(t, Run{
		Files: all,
		// pattern comes from the calling test's source, never from input.
		Script: fmt.Sprintf("#!/bin/sh\nexec /lab/lab.test -test.v -test.count=1 -test.timeout=15m -test.run '%s'\n", pattern),
	})
	t.Logf("lab: %s; boot and tests took %s", strings.ReplaceAll(l.Version(), "\n", ", "), res.Elapsed.Round(time.Second))
	tests := splitTests(res.Output)
	for _, tr := range tests {
		t.Run(tr.name, func(t *testing.T) {
			t.Log("in the lab guest:\n" + tr.output)
			switch tr.verdict {
			case "PASS":
			case "SKIP":
				t.Skip("skipped in the lab guest")
			default:
				t.Errorf("%s in the lab guest", tr.verdict)
			}
		})
	}
	if res.Exit != 0 || len(tests) == 0 {
		t.Fatalf("lab test binary exit %d, %d tests reported\noutput tail:\n%s\nconsole tail:\n%s\nqemu:\n%s",
			res.Exit, len(tests), tail(res.Output, 60), tail(res.Console, 40), tail(res.QEMU, 20))
	}
}

type testResult struct {
	name, verdict, output string
}

var (
	runRe     = regexp.MustCompile(`^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)`)
	verdictRe = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(`)
)

// splitTests attributes each line of `go test -v` output to the top-level
// test that printed it (the last one named by a === line) and reads each
// top-level test's verdict. A test without a verdict (the binary crashed
// or timed out in it) is reported as "NO VERDICT".
func splitTests(out string) []testResult {
	var order []string
	byName := map[string]*testResult{}
	current := ""
	get := func(name string) *testResult {
		top, _, _ := strings.Cut(name, "/")
		r, ok := byName[top]
		if !ok {
			r = &testResult{name: top, verdict: "NO VERDICT"}
			byName[top] = r
			order = append(order, top)
		}
		return r
	}
	for _, line := range strings.Split(out, "\n") {
		if m := runRe.FindStringSubmatch(line); m != nil {
			current = m[1]
		}
		if m := verdictRe.FindStringSubmatch(line); m != nil && !strings.Contains(m[2], "/") {
			get(m[2]).verdict = m[1]
		}
		if current != "" {
			r := get(current)
			r.output += line + "\n"
		}
	}
	results := make([]testResult, 0, len(order))
	for _, name := range order {
		results = append(results, *byName[name])
	}
	return results
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
