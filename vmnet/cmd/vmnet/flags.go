package main

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmcni/vmcni/vmnet/launcher"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// vmFlags are the flags vmnet run and vmnet pod share: the guest image,
// the VMM and logging.
type vmFlags struct {
	kernel, initrd, machine, accel, cmdline *string
	memory                                  *int
	timeout                                 *time.Duration
	console, verbose                        *bool
}

func addVMFlags(fs *flag.FlagSet) *vmFlags {
	guestDir := envOr("VMCNI_GUEST_DIR", "/var/cache/vmcni/guest")
	return &vmFlags{
		kernel:  fs.String("kernel", filepath.Join(guestDir, "vmlinux"), "guest kernel, from $VMCNI_GUEST_DIR by default"),
		initrd:  fs.String("initrd", filepath.Join(guestDir, "initramfs.cpio.gz"), "guest initramfs, from $VMCNI_GUEST_DIR by default"),
		machine: fs.String("machine", "microvm", "QEMU machine: microvm or pc"),
		accel:   fs.String("accel", "auto", "auto, kvm or tcg"),
		memory:  fs.Int("memory", 256, "guest memory in MiB"),
		timeout: fs.Duration("boot-timeout", 60*time.Second, "boot timeout (one retry)"),
		console: fs.Bool("console", false, "echo the whole guest console"),
		cmdline: fs.String("cmdline", "", "extra guest kernel parameters"),
		verbose: fs.Bool("v", false, "log progress to stderr"),
	}
}

// apply sets the launcher options the flags give (not Console).
func (f *vmFlags) apply(o *launcher.Options) {
	o.Kernel, o.Initrd, o.Machine, o.Accel = *f.kernel, *f.initrd, *f.machine, *f.accel
	o.MemoryMiB, o.BootTimeout, o.ExtraCmdline = *f.memory, *f.timeout, *f.cmdline
	if *f.verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}
