package plugin

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
)

// WritableDir is a STATUS check: dir exists (it is created if missing)
// and this process may write in it; code 50 otherwise, naming it what.
func WritableDir(what, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cnierr.Unavailable("%s %q: %w", what, dir, err)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return cnierr.Unavailable("%s %q not writable: %w", what, dir, err)
	}
	return nil
}

// IPAMReady is a STATUS check: it forwards STATUS to the IPAM plugin, code
// 50 when that is not ready.
func IPAMReady(ctx context.Context, d ipam.Delegate) error {
	if err := d.Status(ctx); err != nil {
		return cnierr.Unavailable("%w", err)
	}
	return nil
}
