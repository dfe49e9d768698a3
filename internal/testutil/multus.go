package testutil

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MultusVersion is the Multus CNI release the real-client tests run.
const MultusVersion = "v4.1.0"

// Multus returns the path of the Multus thin plugin binary, building it
// once per machine (cached under the temp dir): the module's vendor tree is
// stale, so it is built from a copy without vendor/, with -mod=mod.
func Multus(t testing.TB) string {
	t.Helper()
	out := filepath.Join(os.TempDir(), "vmcni-multus-"+MultusVersion, "multus")
	if FileExists(out) {
		return out
	}
	mod := "gopkg.in/k8snetworkplumbingwg/multus-cni.v4@" + MultusVersion
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("download %s: %v", mod, err)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(data, &info); err != nil || info.Dir == "" {
		t.Fatalf("download %s: no module dir in %s", mod, data)
	}
	src := t.TempDir()
	if b, err := exec.Command("cp", "-r", info.Dir+"/.", src).CombinedOutput(); err != nil {
		t.Fatalf("copy multus source: %v\n%s", err, b)
	}
	_ = exec.Command("chmod", "-R", "u+w", src).Run()
	if err := os.RemoveAll(filepath.Join(src, "vendor")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", out+".tmp", "./cmd/multus")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build multus: %v\n%s", err, b)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	return out
}
