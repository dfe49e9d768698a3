// Package launcher is vmnet's reference VM launcher: it runs a CNI conflist
// for a network namespace through libcni, turns the result and vmcni hint
// files into a vmnet.Plan, opens the devices, boots QEMU on them and, on
// Close, stops the VM, runs DEL and removes the namespace it created.
//
// Given a plan instead (Options.Plan, e.g. from vmnet.PlanFromNetns and
// vmnet.PlanFromNetworkStatus in a pod whose attachments the kubelet and
// Multus made, as KubeVirt's virt-launcher does), it only opens the
// devices and boots; Close stops the VM and closes the devices.
//
// It proves the hint contract end to end; runtimes embed package vmnet, not
// this launcher.
package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/conflist"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vmnet"
)

// Options configure a Session. Kernel and Initrd are required, and either
// Plan or Conflist and CNIPath; the rest have defaults.
type Options struct {
	// Plan (optional) boots on devices that already exist: no conflist, no
	// CNI ADD or DEL, no netns creation; Close only stops the VM and closes
	// the devices. Conflist, CNIPath, ContainerID, IfName and Netns are then
	// unused. Defaults to planning from the CNI result of Conflist.
	Plan *vmnet.Plan
	// Conflist is the CNI network configuration list (or single config),
	// required without Plan.
	Conflist []byte
	// CNIPath are the directories holding the plugin binaries.
	CNIPath []string
	// ContainerID (optional) defaults to "vmnet-<random>".
	ContainerID string
	// IfName (optional) defaults to "eth0".
	IfName string
	// Netns (optional) is an existing netns path. Defaults to a new named
	// netns that Close removes.
	Netns string
	// Kernel and Initrd boot the guest (see vmnet/guest).
	Kernel, Initrd string
	// QEMU (optional) defaults to qemu-system-x86_64.
	QEMU string
	// Machine (optional) is microvm (default) or pc.
	Machine string
	// MemoryMiB (optional) defaults to 256.
	MemoryMiB int
	// CPUs (optional) is the guest's vCPUs, default 1. A multiqueue NIC
	// runs as many queue pairs as the guest has vCPUs (virtio-net's
	// default), so give it at least its queues.
	CPUs int
	// Accel (optional) is auto (default: KVM when a guest boots under it,
	// else TCG), kvm or tcg.
	Accel string
	// ExtraCmdline (optional) is appended to the guest kernel command line.
	ExtraCmdline string
	// ProbeGateway (optional) makes the guest ping its IPv4 gateway after
	// boot and print VMCNI-PROBE-OK or VMCNI-PROBE-FAIL.
	ProbeGateway bool
	// ProbeTCP (optional, host:port) makes the guest fetch
	// http://host:port/ after boot and print VMCNI-PROBETCP-OK or -FAIL.
	ProbeTCP string
	// Probes (optional) are more IPs the guest pings after boot (after the
	// gateway with ProbeGateway), each reported as VMCNI-PROBE-OK <ip> or
	// VMCNI-PROBE-FAIL <ip>.
	Probes []string
	// ProbeTCPs (optional) are more host:port the guest fetches (after
	// ProbeTCP), each reported as VMCNI-PROBETCP-OK or -FAIL <host:port>.
	ProbeTCPs []string
	// ProbeWait (optional) keeps the guest retrying each probe until this
	// long after boot (whole seconds), e.g. while a peer VM boots. Defaults
	// to the guest's own budget: 4 rounds of 3 echoes, 3 fetches.
	ProbeWait time.Duration
	// BeforeBoot (optional) runs after CNI ADD and planning, before QEMU
	// starts: e.g. to start a vhost-user backend that must listen first.
	BeforeBoot func(*Session) error
	// BootTimeout (optional) bounds each boot attempt; defaults to 60s.
	// A boot that times out is retried once.
	BootTimeout time.Duration
	// Console (optional) receives the guest's serial console.
	Console io.Writer
	// Logger (optional) receives the launcher's progress.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.ContainerID == "" {
		o.ContainerID = "vmnet-" + randomHex(6)
	}
	if o.IfName == "" {
		o.IfName = "eth0"
	}
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if o.Machine == "" {
		o.Machine = "microvm"
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 256
	}
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = logging.Discard()
	}
}

// validate checks what the guest command line and the VMM need, without
// side effects.
func (o *Options) validate() error {
	if o.Plan == nil && len(o.Conflist) == 0 {
		return errors.New("neither a plan nor a conflist")
	}
	for _, ip := range o.Probes {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("probe %q is not an IP address", ip)
		}
	}
	for _, hp := range append([]string{o.ProbeTCP}, o.ProbeTCPs...) {
		if hp == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(hp); err != nil || port == "" || strings.ContainsAny(hp, ", ") {
			return fmt.Errorf("tcp probe %q is not host:port", hp)
		}
	}
	if o.ProbeWait < 0 {
		return fmt.Errorf("negative probe wait %s", o.ProbeWait)
	}
	return nil
}

// Session is one VM on one CNI attachment, or on a given plan.
type Session struct {
	opts   Options
	cni    *libcni.CNIConfig
	list   *libcni.NetworkConfigList
	rt     *libcni.RuntimeConf
	nsName string // set when the session created the netns
	files  []*os.File
	vm     *vmProcess
	added  bool

	// Result is the CNI ADD result; nil when Options.Plan was given.
	Result *current.Result
	// Plan is what the VM was given.
	Plan *vmnet.Plan
	// Ready is the guest's ready line.
	Ready string
	// BootTime is the time from QEMU start to the ready line.
	BootTime time.Duration
	// Accel is the accelerator the guest runs under.
	Accel string
}

// Start plumbs, plans and boots. On error everything done so far is undone.
func Start(ctx context.Context, opts Options) (*Session, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Session{opts: opts}
	if err := s.start(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Session) start(ctx context.Context) error {
	o := &s.opts
	if o.Plan != nil {
		s.Plan = o.Plan
		if len(s.Plan.NICs) == 0 {
			return errors.New("the plan has no NIC")
		}
	} else if err := s.plumb(ctx); err != nil {
		return err
	}
	if o.BeforeBoot != nil {
		if err := o.BeforeBoot(s); err != nil {
			return fmt.Errorf("before boot: %w", err)
		}
	}
	fds, err := s.openDevices()
	if err != nil {
		return err
	}
	return s.boot(ctx, fds)
}

// plumb runs CNI ADD (in a new netns unless Options.Netns names one) and
// plans from its result.
func (s *Session) plumb(ctx context.Context) error {
	o := &s.opts
	list, err := conflist.Parse(o.Conflist)
	if err != nil {
		return err
	}
	s.list = list
	s.cni = libcni.NewCNIConfigWithCacheDir(o.CNIPath, "", nil)
	if o.Netns == "" {
		s.nsName = "vmnet-" + randomHex(5)
		if o.Netns, err = netns.CreateNamed(s.nsName); err != nil {
			return fmt.Errorf("create netns: %w", err)
		}
	}
	s.rt = &libcni.RuntimeConf{ContainerID: o.ContainerID, NetNS: o.Netns, IfName: o.IfName}
	o.Logger.Info("CNI ADD", "network", list.Name, "netns", o.Netns, "container", o.ContainerID)
	raw, err := s.cni.AddNetworkList(ctx, list, s.rt)
	s.added = true
	if err != nil {
		return fmt.Errorf("CNI ADD: %w", err)
	}
	if s.Result, err = current.NewResultFromResult(raw); err != nil {
		return err
	}
	if s.Plan, err = vmnet.PlanFromResult(raw, o.ContainerID, stateDirOf(list)); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if len(s.Plan.NICs) == 0 {
		return errors.New("the CNI result describes no VM device (no vmcni pseudo-interface)")
	}
	return nil
}

// openDevices opens every tap/macvtap queue and returns, per NIC, the fd
// numbers they get in QEMU.
func (s *Session) openDevices() ([][]int, error) {
	fds := make([][]int, len(s.Plan.NICs))
	for i, nic := range s.Plan.NICs {
		var files []*os.File
		var err error
		switch nic.Kind {
		case hint.KindTap:
			files, err = OpenTap(nic.Netns, nic.Device, nic.Queues, nic.Tap == nil || nic.Tap.VnetHdr)
		case hint.KindMacvtap:
			files, err = OpenMacvtap(nic.Macvtap.Major, nic.Macvtap.Minor, nic.Queues)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open %s %q: %w", nic.Kind, nic.Device, err)
		}
		for _, f := range files {
			fds[i] = append(fds[i], 3+len(s.files))
			s.files = append(s.files, f)
		}
	}
	return fds, nil
}

// boot starts QEMU and waits for the guest's ready line, retrying once.
func (s *Session) boot(ctx context.Context, fds [][]int) error {
	accel, err := s.chooseAccel(ctx, fds)
	if err != nil {
		return err
	}
	s.Accel = accel
	var lastErr error
	for attempt := 1; attempt <= 2; attempt++ {
		lastErr = s.bootOnce(ctx, fds, accel, s.opts.BootTimeout)
		if lastErr == nil {
			return nil
		}
		s.opts.Logger.Warn("boot failed", "attempt", attempt, "err", lastErr)
		_ = s.vm.stop()
		s.vm = nil
	}
	return fmt.Errorf("guest did not boot: %w", lastErr)
}

func (s *Session) bootOnce(ctx context.Context, fds [][]int, accel string, timeout time.Duration) error {
	args, err := s.qemuArgs(fds, accel)
	if err != nil {
		return err
	}
	s.opts.Logger.Info("starting QEMU", "accel", accel, "args", strings.Join(args, " "))
	start := time.Now()
	s.vm, err = startQEMU(s.opts.QEMU, args, s.files, s.opts.Console)
	if err != nil {
		return err
	}
	bootCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.Ready, err = s.vm.waitFor(bootCtx, ReadyMarker)
	s.BootTime = time.Since(start)
	return err
}

// probeTargets returns the IPs the guest pings and the host:port it
// fetches, in the order of Options.
func (s *Session) probeTargets() (ping, tcp []string) {
	o := &s.opts
	if gw := s.Gateway(); o.ProbeGateway && gw != nil {
		ping = append(ping, gw.String())
	}
	ping = append(ping, o.Probes...)
	if o.ProbeTCP != "" {
		tcp = append(tcp, o.ProbeTCP)
	}
	return ping, append(tcp, o.ProbeTCPs...)
}

// ProbeMarkers are the console markers that report the probes asked for
// in Options (wait for them with WaitConsole): "VMCNI-PROBE-" when the
// guest pings, "VMCNI-PROBETCP-" when it fetches. With several targets each
// has its own line (see vmnet/guest/README.md).
func (s *Session) ProbeMarkers() []string {
	var m []string
	ping, tcp := s.probeTargets()
	if len(ping) > 0 {
		m = append(m, "VMCNI-PROBE-")
	}
	if len(tcp) > 0 {
		m = append(m, "VMCNI-PROBETCP-")
	}
	return m
}

// Wait blocks until QEMU exits or ctx ends, and returns ctx.Err() in the
// latter case, else QEMU's exit error (nil when the guest powered off,
// e.g. after vmcni.halt_after). Without a running VM it returns at once.
func (s *Session) Wait(ctx context.Context) error {
	vm := s.vm
	if vm == nil {
		return errors.New("no VM running")
	}
	select {
	case <-vm.done:
		return vm.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitConsole waits for a console line containing prefix.
func (s *Session) WaitConsole(ctx context.Context, prefix string) (string, error) {
	if s.vm == nil {
		return "", errors.New("no VM running")
	}
	return s.vm.waitFor(ctx, prefix)
}

// Console returns the guest's console lines so far.
func (s *Session) Console() []string {
	if s.vm == nil {
		return nil
	}
	return s.vm.console()
}

// GuestIP returns the first NIC's first address of the given family
// (v6 false: IPv4), or nil.
func (s *Session) GuestIP(v6 bool) net.IP {
	for _, ip := range s.Plan.NICs[0].IPs {
		addr, _, err := net.ParseCIDR(ip.Address)
		if err == nil && (addr.To4() == nil) == v6 {
			return addr
		}
	}
	return nil
}

// Gateway returns the first NIC's IPv4 gateway, or nil.
func (s *Session) Gateway() net.IP {
	for _, ip := range s.Plan.NICs[0].IPs {
		if gw := net.ParseIP(ip.Gateway); gw != nil && gw.To4() != nil {
			return gw
		}
	}
	return nil
}

// Close stops the VM, closes the devices, runs CNI DEL and removes the
// netns the session created (with Options.Plan: only the first two). It is
// safe to call more than once.
func (s *Session) Close() error {
	var errs []error
	if s.vm != nil {
		errs = append(errs, s.vm.stop())
		s.vm = nil
	}
	closeAll(s.files)
	s.files = nil
	if s.added {
		s.opts.Logger.Info("CNI DEL", "container", s.opts.ContainerID)
		errs = append(errs, s.cni.DelNetworkList(context.Background(), s.list, s.rt))
		s.added = false
	}
	if s.nsName != "" {
		errs = append(errs, netns.DeleteNamed(s.nsName))
		s.nsName = ""
	}
	return errors.Join(errs...)
}

// stateDirOf returns the stateDir of the first plugin that sets one, else
// the contract's default.
func stateDirOf(list *libcni.NetworkConfigList) string {
	for _, p := range list.Plugins {
		var c struct {
			StateDir string `json:"stateDir"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && c.StateDir != "" {
			return c.StateDir
		}
	}
	return hint.DefaultStateDir
}
