package vpp

import (
	"context"
	"errors"
	"syscall"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// dial connects to VPP for conf and checks the CRCs of the messages conf's
// commands use. Errors are returned unclassified; see addError,
// statusError and vppGone.
func (p *Plugin) dial(ctx context.Context, conf *NetConf) (*vppapi.Client, error) {
	return vppapi.Dial(ctx, p.connect, conf.APISocket, conf.Timeout.Duration, conf.features()...)
}

// addError maps a connection failure of ADD to its CNI code: 11 when VPP
// exists but is not ready (it refused, dropped or did not answer the
// connection: starting, restarting, overloaded), 50 otherwise (no socket,
// incompatible VPP, permission denied...).
func addError(err error) error {
	if errors.Is(err, vppapi.ErrNotReady) {
		return cnierr.TryAgain("VPP is not ready, try again: %w", err)
	}
	return cnierr.Unavailable("VPP unavailable: %w", err)
}

// statusError maps every connection failure of STATUS to code 50.
func statusError(err error) error {
	return cnierr.Unavailable("VPP unavailable: %w", err)
}

// vppGone reports whether a connection failure means VPP is not running:
// its API socket is missing or nothing listens on it. VPP keeps no API
// state across restarts, so the attachment's VPP objects no longer exist.
func vppGone(err error) bool {
	return errors.Is(err, vppapi.ErrNoSocket) || errors.Is(err, syscall.ECONNREFUSED)
}
