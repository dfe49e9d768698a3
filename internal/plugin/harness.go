package plugin

import (
	"io"
	"os"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// Harness is embedded by every vmcni plugin: where results go (stdout, the
// CNI protocol) and the fault-injection seam the tests use to stop ADD after
// any side effect, with or without rollback.
type Harness struct {
	stdout      io.Writer
	afterStep   func(step string) error
	keepPartial bool
}

// Option configures a plugin's Harness.
type Option func(*Harness)

// WithStepHook calls hook after each side effect of ADD with the step's
// name; a non-nil error makes ADD fail at that point (fault injection).
func WithStepHook(hook func(step string) error) Option {
	return func(h *Harness) { h.afterStep = hook }
}

// WithoutRollback leaves a failed ADD's partial attachment in place, exactly
// as a crash at that point would (the record stays incomplete; DEL or GC
// must clean it). For fault-injection tests and post-mortem debugging.
func WithoutRollback() Option {
	return func(h *Harness) { h.keepPartial = true }
}

// WithStdout sends results to w instead of os.Stdout (in-process runs).
func WithStdout(w io.Writer) Option {
	return func(h *Harness) { h.stdout = w }
}

// Apply sets the defaults and applies opts.
func (h *Harness) Apply(opts []Option) {
	h.stdout = os.Stdout
	for _, o := range opts {
		o(h)
	}
}

// Step reports that the side effect named step is done; an error from the
// hook must fail the ADD there.
func (h *Harness) Step(step string) error {
	if h.afterStep == nil {
		return nil
	}
	return h.afterStep(step)
}

// KeepPartial reports whether a failed ADD must skip its rollback.
func (h *Harness) KeepPartial() bool { return h.keepPartial }

// PrintResult writes res converted to cniVersion on the plugin's stdout.
func (h *Harness) PrintResult(res *current.Result, cniVersion string) error {
	out, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return cnierr.Version("convert result to %q: %w", cniVersion, err)
	}
	return out.PrintTo(h.stdout)
}
