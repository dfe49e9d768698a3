package sriov

import (
	"io"
	"os"

	"github.com/vmcni/vmcni/pkg/plugin"
)

// PluginName is the binary name, recorded in hints and records.
const PluginName = "vm-sriov"

// Plugin implements vm-sriov's CNI commands.
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
