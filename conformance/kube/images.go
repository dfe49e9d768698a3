package kube

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/vmcni/vmcni/deploy/image"
)

// Workload images the tests build from this checkout and the host's
// packages (no registry is reachable), fully qualified as the kubelet
// asks containerd for them.
const (
	// LauncherImage runs vmnet's reference launcher: the static vmnet
	// binary, QEMU with its libraries and data, and the test guest.
	LauncherImage = "localhost/vmcni/vm-launcher:test"
	// ToolsImage is busybox: sh, ping, wget, nc for client pods.
	ToolsImage = "localhost/vmcni/tools:test"
)

// Images are the archives a cluster imports.
type Images struct {
	VMCNI    string // `make image`: the DaemonSet's image (deploy/)
	Pause    string
	Launcher string
	Tools    string
}

// All returns every archive.
func (im Images) All() []string { return []string{im.VMCNI, im.Pause, im.Launcher, im.Tools} }

// BuildImages builds every image archive into dir: the vmcni image with
// `make image` (so the test proves that target), the others from a static
// build of this module's commands and the host's files. guestDir holds the
// test guest (vmlinux, initramfs.cpio.gz).
func BuildImages(moduleRoot, dir, guestDir string) (Images, error) {
	im := Images{
		VMCNI: filepath.Join(dir, "bin", "vmcni-image.tar"), Pause: filepath.Join(dir, "pause.tar"),
		Launcher: filepath.Join(dir, "launcher.tar"), Tools: filepath.Join(dir, "tools.tar"),
	}
	mk := exec.Command("make", "-C", moduleRoot, "image", "BIN="+filepath.Join(dir, "bin"))
	if out, err := mk.CombinedOutput(); err != nil {
		return im, fmt.Errorf("make image: %w\n%s", err, out)
	}
	static := filepath.Join(dir, "static")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", static+"/",
		"./vmnet/cmd/vmnet", "./deploy/cmd/vmcni-install")
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return im, fmt.Errorf("build static commands: %w\n%s", err, out)
	}

	pause := image.Spec{Ref: PauseImage, Entrypoint: []string{"/pause", "keepalive"},
		Files: []image.File{{Path: "/pause", Mode: 0o755, Source: filepath.Join(static, "vmcni-install")}}}
	if err := image.Write(im.Pause, pause); err != nil {
		return im, err
	}

	tools := image.Spec{Ref: ToolsImage, Env: []string{"PATH=/bin"}, Entrypoint: []string{"/bin/sh"},
		Files: []image.File{{Path: "/bin/busybox", Mode: 0o755, Source: "/usr/bin/busybox"}}}
	for _, applet := range []string{"sh", "ping", "wget", "nc", "sleep", "cat", "ip", "ls", "httpd", "echo"} {
		tools.Files = append(tools.Files, image.File{Path: "/bin/" + applet, Link: "busybox"})
	}
	if err := image.Write(im.Tools, tools); err != nil {
		return im, err
	}

	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return im, fmt.Errorf("qemu-system-x86_64 not installed: %w", err)
	}
	launcher := image.Spec{Ref: LauncherImage,
		Env:        []string{"PATH=/usr/bin:/bin", "VMCNI_GUEST_DIR=/guest"},
		Entrypoint: []string{"/usr/bin/vmnet"},
		Files: []image.File{
			{Path: "/usr/bin/vmnet", Mode: 0o755, Source: filepath.Join(static, "vmnet")},
			{Path: "/usr/bin/qemu-system-x86_64", Mode: 0o755, Source: qemu},
			{Path: "/guest/vmlinux", Mode: 0o644, Source: filepath.Join(guestDir, "vmlinux")},
			{Path: "/guest/initramfs.cpio.gz", Mode: 0o644, Source: filepath.Join(guestDir, "initramfs.cpio.gz")},
			{Path: "/tmp/.keep", Mode: 0o644, Data: []byte("the launcher's scratch directory\n")},
		}}
	// TCG is a loadable module of Debian's QEMU, next to its libraries.
	tcg := filepath.Join(filepath.Dir(filepath.Dir(qemu)), "lib", "x86_64-linux-gnu", "qemu", "accel-tcg-x86_64.so")
	launcher.Files = append(launcher.Files, image.File{Path: tcg, Mode: 0o644, Source: tcg})
	for _, obj := range []string{qemu, tcg} {
		libs, lerr := sharedLibraries(obj)
		if lerr != nil {
			return im, lerr
		}
		launcher.Files = append(launcher.Files, libs...)
	}
	launcher.Files = dedupe(launcher.Files)
	data, err := treeFiles("/usr/share/qemu")
	if err != nil {
		return im, err
	}
	launcher.Files = append(launcher.Files, data...)
	if err = image.Write(im.Launcher, launcher); err != nil {
		return im, err
	}
	return im, nil
}

// dedupe drops files whose path came earlier.
func dedupe(files []image.File) []image.File {
	seen := map[string]bool{}
	return slices.DeleteFunc(files, func(f image.File) bool {
		dup := seen[f.Path]
		seen[f.Path] = true
		return dup
	})
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibraries lists the libraries bin loads (ldd), each at the path
// the dynamic loader finds it, with its content resolved.
func sharedLibraries(bin string) ([]image.File, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var files []image.File
	seen := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		m := lddLine.FindStringSubmatch(l)
		if m == nil || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		files = append(files, image.File{Path: m[1], Mode: 0o755, Source: m[1]})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// treeFiles lists the files and symlinks under root as image files at the
// same paths.
func treeFiles(root string) ([]image.File, error) {
	var files []image.File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files = append(files, image.File{Path: p, Link: target})
		case d.Type().IsRegular():
			files = append(files, image.File{Path: p, Mode: 0o644, Source: p})
		}
		return nil
	})
	return files, err
}
