package imagespec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/deploy/image"
)

func TestDaemonSetRefOfTheRepository(t *testing.T) {
	got, err := DaemonSetRef(filepath.Join("..", "..", "daemonset.yaml"))
	if err != nil || got != "docker.io/vmcni/vmcni:dev" {
		t.Fatalf("DaemonSetRef = %q, %v; want docker.io/vmcni/vmcni:dev", got, err)
	}
}

func TestDaemonSetRefErrors(t *testing.T) {
	const head = "apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n"
	for _, tc := range []struct{ yaml, want string }{
		{"kind: ConfigMap\n---\n" + head + "      containers:\n        - image: a/b:1\n---\n" + head +
			"      containers:\n        - image: a/c:1\n", `the DaemonSet runs two images, "a/b:1" and "a/c:1"`},
		{head + "      initContainers:\n        - name: x\n", "a DaemonSet container has no image"},
		{"kind: ConfigMap\n", "no DaemonSet with a container image"},
		{head + "      containers: {", "document 0"},
		{head + "      containers:\n        - image: a/b@sha256:" + strings.Repeat("0", 64) + "\n", "a tag is required"},
	} {
		p := filepath.Join(t.TempDir(), "ds.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := DaemonSetRef(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DaemonSetRef(%q) = %q, %v; want an error with %q", tc.yaml, got, err, tc.want)
		}
	}
}

// TestPluginsAreThePluginMains keeps Plugins in step with plugins/.
func TestPluginsAreThePluginMains(t *testing.T) {
	ents, err := os.ReadDir(filepath.Join("..", "..", "..", "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	var mains []string
	for _, e := range ents {
		if e.IsDir() {
			mains = append(mains, e.Name())
		}
	}
	if !reflect.DeepEqual(mains, Plugins) {
		t.Errorf("plugins/ holds %v, Plugins lists %v", mains, Plugins)
	}
}

func TestSpec(t *testing.T) {
	bin := t.TempDir()
	for _, n := range append(append([]string{}, Plugins...), Installer) {
		if err := os.WriteFile(filepath.Join(bin, n), []byte(n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := Spec(bin, "docker.io/vmcni/vmcni:dev")
	var paths []string
	for _, f := range s.Files {
		paths = append(paths, f.Path)
		if f.Mode != 0o755 || f.Source != filepath.Join(bin, filepath.Base(f.Path)) {
			t.Errorf("%s: mode %v source %q", f.Path, f.Mode, f.Source)
		}
	}
	want := []string{"/opt/vmcni/bin/vm-bridge", "/opt/vmcni/bin/vm-sriov", "/opt/vmcni/bin/vm-vhostuser",
		"/opt/vmcni/bin/vm-vpp", "/vmcni-install"}
	if !reflect.DeepEqual(paths, want) || !reflect.DeepEqual(s.Entrypoint, []string{"/vmcni-install"}) {
		t.Errorf("files %v entrypoint %v, want %v and [/vmcni-install]", paths, s.Entrypoint, want)
	}
	if err := image.Write(filepath.Join(t.TempDir(), "vmcni.tar"), s); err != nil {
		t.Fatal(err)
	}
	// A missing binary names itself.
	if err := os.Remove(filepath.Join(bin, "vm-vpp")); err != nil {
		t.Fatal(err)
	}
	err := image.Write(filepath.Join(t.TempDir(), "vmcni.tar"), s)
	if err == nil || !strings.Contains(err.Error(), `file "/opt/vmcni/bin/vm-vpp": source: stat `+filepath.Join(bin, "vm-vpp")) {
		t.Errorf("Write without vm-vpp: %v", err)
	}
}
