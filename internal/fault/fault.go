// Package fault carries a test's fault-injection hook down a call chain,
// in the context, to the points where a multi-call side effect can stop
// half way (a link created but not yet up, a qdisc added but no filter
// yet). Production contexts carry no hook and every Point is a no-op.
//
// The plugin engine installs its step hook (plugin.WithStepHook) here, so
// one hook sees both the engine's step boundaries ("record", "tap", ...)
// and the inner points ("link created: vmcni0"), and a fault sweep can
// fail an ADD at either.
package fault

import "context"

// Hook is called at each point with its name; a non-nil error makes the
// operation fail there.
type Hook func(point string) error

type hookKey struct{}

// With returns ctx carrying hook (nil removes any hook).
func With(ctx context.Context, hook Hook) context.Context {
	return context.WithValue(ctx, hookKey{}, hook)
}

// Point reports that the operation reached point: the hook's error, or nil
// when ctx carries no hook.
func Point(ctx context.Context, point string) error {
	if ctx == nil {
		return nil
	}
	hook, _ := ctx.Value(hookKey{}).(Hook)
	if hook == nil {
		return nil
	}
	return hook(point)
}
