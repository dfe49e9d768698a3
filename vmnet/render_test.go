package vmnet

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/pkg/hint"
)

// renderFixtures are the plans rendered for every VMM and guest format; each
// has testdata/render/<name>.golden.
func renderFixtures() []struct {
	name  string
	hints []*hint.Hint
} {
	secondTap := tapHint("eth1", "tap_eth1", 1)
	secondTap.Guest.MAC = "2e:7d:1c:22:40:08"
	secondTap.Guest.IPs = []hint.IP{{Address: "10.23.0.5/24", Gateway: "10.23.0.1"}}
	secondTap.Guest.Routes, secondTap.Guest.DNS = nil, nil
	return []struct {
		name  string
		hints []*hint.Hint
	}{
		{"tap-1q", []*hint.Hint{tapHint("eth0", "tap_eth0", 1)}},
		{"tap-4q", []*hint.Hint{tapHint("eth0", "tap_eth0", 4)}},
		{"macvtap", []*hint.Hint{macvtapHint()}},
		{"vhost-user-server", []*hint.Hint{vhostUserHint("server", 1)}},
		{"vhost-user-client-2q", []*hint.Hint{vhostUserHint("client", 2)}},
		{"vfio", []*hint.Hint{vfioHint()}},
		{"memif", []*hint.Hint{memifHint()}},
		{"two-taps", []*hint.Hint{tapHint("eth0", "tap_eth0", 1), secondTap}},
		{"mixed", []*hint.Hint{tapHint("eth0", "tap_eth0", 2), vhostUserHint("server", 1), vfioHint()}},
	}
}

// TestRender renders every fixture with every renderer into one golden file
// per fixture, errors included.
func TestRender(t *testing.T) {
	for _, fx := range renderFixtures() {
		t.Run(fx.name, func(t *testing.T) {
			p := mustPlan(t, fx.hints...)
			fds := fdsFor(p)
			var b strings.Builder
			section := func(title, text string, err error) {
				if err != nil {
					text = "error: " + err.Error()
				}
				fmt.Fprintf(&b, "# %s\n%s\n\n", title, strings.TrimRight(text, "\n"))
			}
			section("plan", p.String(), nil)
			for _, machine := range []string{"microvm", "pc"} {
				args, err := QEMUArgs(p, QEMUOptions{Machine: machine, MemoryMiB: 512, FDs: fds})
				section("qemu "+machine, strings.Join(args, "\n"), err)
			}
			args, err := CloudHypervisorArgs(p, fds)
			section(fmt.Sprintf("cloud-hypervisor (shared memory: %v)", p.NeedsSharedMemory()), strings.Join(args, "\n"), err)
			fc, err := FirecrackerNetworkInterfaces(p)
			section("firecracker network-interfaces", string(fc), err)
			section("kernel ip=", KernelIPParam(p), nil)
			section("guest cmdline", GuestCmdline(p), nil)
			ci, err := CloudInitNetworkConfig(p)
			section("cloud-init network-config", string(ci), err)
			lv, err := LibvirtDomain(p, LibvirtOptions{Name: "vm-" + fx.name, Kernel: "/boot/vmlinux", Cmdline: GuestCmdline(p)})
			section("libvirt domain", string(lv), err)
			golden(t, "render/"+fx.name, []byte(b.String()))
		})
	}
}

// TestUnsupported checks that unsupported kinds fail with ErrUnsupported and
// name the NIC.
func TestUnsupported(t *testing.T) {
	memif := mustPlan(t, tapHint("eth0", "tap_eth0", 1), memifHint())
	vhost := mustPlan(t, vhostUserHint("server", 1))
	mq := mustPlan(t, tapHint("eth0", "tap_eth0", 2))
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"qemu memif", func() error {
			_, err := QEMUArgs(memif, QEMUOptions{Machine: "microvm", FDs: fdsFor(memif)})
			return err
		}, `NIC 1 (memif "memif-c1.sock", ifName "net3")`},
		{"cloud-hypervisor memif", func() error { _, err := CloudHypervisorArgs(memif, fdsFor(memif)); return err }, `NIC 1 (memif "memif-c1.sock"`},
		{"firecracker memif", func() error { _, err := FirecrackerNetworkInterfaces(memif); return err }, `NIC 1 (memif`},
		{"firecracker vhost-user", func() error { _, err := FirecrackerNetworkInterfaces(vhost); return err }, `NIC 0 (vhost-user "c1-net1.sock"`},
		{"firecracker multiqueue", func() error { _, err := FirecrackerNetworkInterfaces(mq); return err }, `NIC 0 (tap "tap_eth0"`},
		{"qemu machine", func() error { _, err := QEMUArgs(vhost, QEMUOptions{Machine: "virt"}); return err }, `"virt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v, want one wrapping ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestRenderErrors covers bad renderer input.
func TestRenderErrors(t *testing.T) {
	tap := mustPlan(t, tapHint("eth0", "tap_eth0", 2))
	vhost := mustPlan(t, vhostUserHint("server", 1))
	badTap := mustPlan(t, tapHint("eth0", "tap_eth0", 1))
	badTap.NICs[0].Tap = nil
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"qemu missing fds", func() error { _, err := QEMUArgs(tap, QEMUOptions{Machine: "pc"}); return err }, "0 descriptors for 2 queues"},
		{"qemu too few fds", func() error {
			_, err := QEMUArgs(tap, QEMUOptions{Machine: "pc", FDs: [][]int{{3}}})
			return err
		}, "1 descriptors for 2 queues"},
		{"qemu too many fd lists", func() error {
			_, err := QEMUArgs(tap, QEMUOptions{Machine: "pc", FDs: [][]int{{3, 4}, {5}}})
			return err
		}, "2 descriptor lists for 1 NICs"},
		{"qemu vhost-user without memory", func() error { _, err := QEMUArgs(vhost, QEMUOptions{Machine: "q35"}); return err }, "MemoryMiB"},
		{"cloud-hypervisor negative fd", func() error { _, err := CloudHypervisorArgs(tap, [][]int{{3, -1}}); return err }, "bad descriptor -1"},
		{"nil plan", func() error { _, err := CloudInitNetworkConfig(nil); return err }, "nil plan"},
		{"hand-made plan without section", func() error { _, err := QEMUArgs(badTap, QEMUOptions{Machine: "pc"}); return err }, `NIC 0 (tap "tap_eth0", ifName "eth0"): kind "tap" without its section`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestGuestParamsEmpty(t *testing.T) {
	p := mustPlan(t, memifHint()) // no IPs
	if got := KernelIPParam(p); got != "" {
		t.Errorf("KernelIPParam = %q, want empty", got)
	}
	if got, want := GuestCmdline(p), "vmcni.mac=02:00:00:cc:00:03"; got != want {
		t.Errorf("GuestCmdline = %q, want %q", got, want)
	}
	if got := GuestCmdline(&Plan{}); got != "" {
		t.Errorf("GuestCmdline(empty) = %q, want empty", got)
	}
	ci, err := CloudInitNetworkConfig(&Plan{})
	if err != nil || string(ci) != "version: 2\nethernets: {}\n" {
		t.Errorf("CloudInitNetworkConfig(empty) = %q, %v", ci, err)
	}
	// The first IPv4 NIC need not be NIC 0.
	p = mustPlan(t, vhostUserHint("server", 1), vfioHint())
	if got, want := KernelIPParam(p), "ip=192.168.7.20:::255.255.255.0::eth1:off"; got != want {
		t.Errorf("KernelIPParam = %q, want %q", got, want)
	}
}
