package launcher

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmcni/vmcni/vmnet"
)

// qemuArgs is the whole QEMU command line: machine, the guest image with
// the network parameters on its kernel command line, and vmnet's NIC args.
func (s *Session) qemuArgs(fds [][]int, accel string) ([]string, error) {
	o := s.opts
	netArgs, err := vmnet.QEMUArgs(s.Plan, vmnet.QEMUOptions{Machine: o.Machine, MemoryMiB: o.MemoryMiB, FDs: fds})
	if err != nil {
		return nil, err
	}
	machine := o.Machine
	if machine == "microvm" {
		machine = "microvm,x-option-roms=off,rtc=on"
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	cmdline := []string{"console=ttyS0", "panic=-1", "quiet"}
	if khz := hostCPUkHz(); khz > 0 {
		// without it ~10% of microvm boots hang calibrating the TSC
		cmdline = append(cmdline, fmt.Sprintf("tsc_early_khz=%d", khz))
	}
	cmdline = append(cmdline, vmnet.GuestCmdline(s.Plan), o.ExtraCmdline)
	ping, tcp := s.probeTargets()
	if len(ping) > 0 {
		cmdline = append(cmdline, "vmcni.probe="+strings.Join(ping, ","))
	}
	if len(tcp) > 0 {
		cmdline = append(cmdline, "vmcni.probetcp="+strings.Join(tcp, ","))
	}
	if o.ProbeWait > 0 {
		cmdline = append(cmdline, fmt.Sprintf("vmcni.probe_wait=%d", int((o.ProbeWait+time.Second-1)/time.Second)))
	}
	args := []string{
		"-M", machine, "-accel", accel, "-cpu", cpu, "-m", fmt.Sprintf("%dM", o.MemoryMiB),
		"-smp", strconv.Itoa(o.CPUs), "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-serial", "stdio", "-kernel", o.Kernel, "-initrd", o.Initrd,
		"-append", strings.Join(strings.Fields(strings.Join(cmdline, " ")), " "),
	}
	return append(args, netArgs...), nil
}
