// Package bridgetap is the logic of the vm-bridge CNI plugin: it wires a
// virtio-net backend for a VM-based pod (Kata Containers, Firecracker, Cloud
// Hypervisor, QEMU) to the pod interface.
//
// Standalone (no prevResult) it builds the pod interface itself: a host
// bridge, a veth whose peer is created directly in the pod netns as
// CNI_IFNAME, addresses from the IPAM plugin, optional gateway and
// masquerade. Chained (prevResult given) it takes the CNI_IFNAME made by the
// previous plugin (bridge, ptp, Calico, Cilium...) and only adds the VM
// plumbing. The plumbing, inside the pod netns, is one of:
//
//   - tcfilter: a tap, and ingress qdiscs on the pod interface and the tap
//     whose u32 filters redirect every frame to the other (Kata's default);
//   - bridge: a tap and the pod interface enslaved to a bridge in the netns
//     (the Clear Containers design); the pod interface gets a new MAC and the
//     guest keeps the original one;
//   - macvtap: a macvtap on the pod interface, carrying the guest's MAC;
//     the pod interface gets a new MAC.
//
// The pod interface keeps its addresses and routes (Kata scans them). The
// result, the hint file and the record follow package hint's contract v1 and
// package store's rules: nothing is created before the record, every ADD
// failure rolls back through an undo stack, DEL and GC are idempotent.
package bridgetap

import (
	"io"
	"os"

	"github.com/vmcni/vmcni/pkg/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-bridge"

// Plugin implements vm-bridge's CNI commands.
type Plugin struct {
	// stdout receives the result (the CNI protocol); os.Stdout by default.
	stdout io.Writer
	// afterStep, when set, runs after every side effect of ADD (named by
	// step); an error fails the ADD there. Tests use it to inject faults.
	afterStep func(step string) error
	// keepPartial skips the rollback of a failed ADD, leaving what a crash
	// at that point would leave.
	keepPartial bool
}

// Option configures a Plugin.
type Option func(*Plugin)

// WithStepHook calls hook after each side effect of ADD with the step's
// name; a non-nil error makes ADD fail at that point (fault injection).
func WithStepHook(hook func(step string) error) Option {
	return func(p *Plugin) { p.afterStep = hook }
}

// WithoutRollback leaves a failed ADD's partial attachment in place, exactly
// as a crash at that point would (the record stays incomplete; DEL or GC must
// clean it). For fault-injection tests and post-mortem debugging.
func WithoutRollback() Option {
	return func(p *Plugin) { p.keepPartial = true }
}

// WithStdout sends results to w instead of os.Stdout (in-process runs).
func WithStdout(w io.Writer) Option {
	return func(p *Plugin) { p.stdout = w }
}

// New returns the plugin.
func New(opts ...Option) *Plugin {
	p := &Plugin{stdout: os.Stdout}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Funcs returns the command table for plugin.Main.
func (p *Plugin) Funcs() plugin.Funcs {
	return plugin.Funcs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}

func (p *Plugin) step(name string) error {
	if p.afterStep == nil {
		return nil
	}
	return p.afterStep(name)
}
