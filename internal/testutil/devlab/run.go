package devlab

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DirEnv names the lab directory; `make test` sets it.
const DirEnv = "VMCNI_LAB_DIR"

const defaultDir = "/var/cache/vmcni/lab"

// Lab is a built device lab.
type Lab struct {
	// Dir holds qemu/, vmlinuz, initramfs.cpio.gz and VERSION.
	Dir string
}

// InGuest reports whether this process runs inside the lab guest.
func InGuest() bool { return os.Getenv("VMCNI_LAB") == "1" }

// Require returns the built lab, skipping the test when there is none and
// DirEnv is unset (a plain `go test`), failing it when DirEnv names a
// directory without a lab (`make test` must run the lab).
func Require(t testing.TB) *Lab {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("skipped: the device lab needs root")
	}
	dir, required := os.LookupEnv(DirEnv)
	if !required {
		dir = defaultDir
	}
	l := &Lab{Dir: dir}
	for _, f := range []string{l.qemu(), l.file("vmlinuz"), l.file("initramfs.cpio.gz")} {
		if _, err := os.Stat(f); err != nil {
			if required {
				t.Fatalf("no device lab in %s (run make lab): %v", dir, err)
			}
			t.Skipf("skipped: no device lab in %s; run `make lab` (make test does)", dir)
		}
	}
	return l
}

func (l *Lab) file(name string) string { return filepath.Join(l.Dir, name) }
func (l *Lab) qemu() string            { return l.file("qemu/usr/bin/qemu-system-x86_64") }

// Version is the lab's kernel and QEMU versions, one per line.
func (l *Lab) Version() string {
	b, _ := os.ReadFile(l.file("VERSION"))
	return strings.TrimSpace(string(b))
}

// Run is one boot of the lab guest.
type Run struct {
	// Files maps a path under /lab in the guest to a host file, copied
	// with its mode.
	Files map[string]string
	// Script is /lab/run, a shell script run by the guest's init.
	Script string
	// VFs is the number of VFs the guest creates (default 7).
	VFs int
	// Timeout bounds the whole boot (default 20 minutes).
	Timeout time.Duration
}

// Result is what a boot produced.
type Result struct {
	// Output is the script's output (the guest's second serial port),
	// without the exit marker.
	Output string
	// Console is the guest console: kernel messages and init's markers.
	Console string
	// QEMU is QEMU's own stderr (e.g. IOMMU translation faults).
	QEMU string
	// Exit is the script's exit status, -1 when the guest never said.
	Exit int
	// Elapsed is the wall time of the boot.
	Elapsed time.Duration
}

var exitRe = regexp.MustCompile(`(?m)^VMCNI-LAB-EXIT (\d+)\s*$`)

// Run boots the guest once with r and returns what it produced. It fails
// the test only when the guest cannot be started; a script that fails or
// a guest that times out is in the Result (Exit != 0).
func (l *Lab) Run(t testing.TB, r Run) Result {
	t.Helper()
	if r.VFs == 0 {
		r.VFs = 7
	}
	if r.Timeout == 0 {
		r.Timeout = 20 * time.Minute
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd")
	if err := l.writeInitrd(initrd, filepath.Join(dir, "payload"), r); err != nil {
		t.Fatalf("lab initrd: %v", err)
	}
	console, output := filepath.Join(dir, "console.log"), filepath.Join(dir, "run.log")
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.qemu(), l.args(initrd, console, output, r.VFs)...)
	// The unpacked QEMU must load its own modules, not the host QEMU's.
	cmd.Env = append(os.Environ(), "QEMU_MODULE_DIR="+l.file("qemu/usr/lib/x86_64-linux-gnu/qemu"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Exit: -1, Elapsed: time.Since(start), QEMU: stderr.String()}
	if ctx.Err() != nil {
		res.QEMU += fmt.Sprintf("\n(killed after %s)", r.Timeout)
	} else if err != nil && res.QEMU == "" {
		t.Fatalf("qemu: %v", err)
	}
	c, _ := os.ReadFile(console)
	o, _ := os.ReadFile(output)
	res.Console = string(c)
	res.Output = string(o)
	if m := exitRe.FindStringSubmatchIndex(res.Output); m != nil {
		res.Exit, _ = strconv.Atoi(res.Output[m[2]:m[3]])
		res.Output = res.Output[:m[0]]
	}
	return res
}

// args is the lab machine: q35 with an Intel IOMMU (interrupt remapping,
// caching mode so that assigned devices' mappings are seen), one igb PF on
// a user-mode backend that reaches nothing, two serial ports.
//
// No 64-bit PCI hole: QEMU 10.0's igb realizes its VFs (pcie_sriov_pf_init)
// before it declares their BARs 64-bit (pcie_sriov_pf_init_vf_bar), so
// QEMU decodes a VF BAR from its low 32 bits only. A guest that places the
// VF BARs above 4 GiB, as Linux does when the host bridge offers a 64-bit
// window, gets VFs whose registers are not mapped: reads return 0, writes
// are dropped, the mailbox to the PF never works and igbvf never sees link
// (STATUS.LU). Without the window the BARs land below 4 GiB and work.
func (l *Lab) args(initrd, console, output string, vfs int) []string {
	return []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-L", l.file("qemu/usr/share/qemu"), "-L", "/usr/share/seabios",
		"-machine", "q35,kernel-irqchip=split,accel=tcg",
		"-global", "q35-pcihost.pci-hole64-size=0", "-cpu", "max", "-smp", "2", "-m", "1536",
		"-device", "intel-iommu,intremap=on,caching-mode=on",
		"-netdev", "user,id=n0,restrict=on", "-device", "igb,netdev=n0,romfile=",
		"-kernel", l.file("vmlinuz"), "-initrd", initrd,
		"-append", fmt.Sprintf("console=ttyS0 intel_iommu=on panic=-1 quiet vmcni.lab.vfs=%d", vfs),
		"-serial", "file:" + console, "-serial", "file:" + output,
	}
}

// writeInitrd writes the lab's initramfs followed by an archive of r's
// files under /lab. The kernel unpacks concatenated archives; an
// uncompressed one must start 4-byte aligned, hence the zero padding.
func (l *Lab) writeInitrd(initrd, payload string, r Run) error {
	labDir := filepath.Join(payload, "lab")
	if err := os.MkdirAll(filepath.Join(labDir, "bin"), 0o755); err != nil {
		return err
	}
	for name, src := range r.Files {
		if err := copyFile(src, filepath.Join(labDir, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(labDir, "run"), []byte(r.Script), 0o755); err != nil {
		return err
	}
	var names []string
	if err := filepath.WalkDir(payload, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != payload {
			rel, _ := filepath.Rel(payload, p)
			names = append(names, rel)
		}
		return err
	}); err != nil {
		return err
	}
	base, err := os.ReadFile(l.file("initramfs.cpio.gz"))
	if err != nil {
		return err
	}
	cpio := exec.Command("cpio", "-o", "-H", "newc", "--quiet", "--owner", "0:0")
	cpio.Dir, cpio.Stdin = payload, strings.NewReader(strings.Join(names, "\n")+"\n")
	var archive, stderr bytes.Buffer
	cpio.Stdout, cpio.Stderr = &archive, &stderr
	if err := cpio.Run(); err != nil {
		return fmt.Errorf("cpio: %w: %s", err, stderr.String())
	}
	base = append(base, make([]byte, (4-len(base)%4)%4)...)
	return os.WriteFile(initrd, append(base, archive.Bytes()...), 0o644)
}

func copyFile(src, dst string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, info.Mode().Perm())
}
