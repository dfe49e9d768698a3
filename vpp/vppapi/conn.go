// Package vppapi is vm-vpp's narrow gateway to VPP's binary API.
//
// The plugin never touches govpp directly: it asks a Connector for a Conn
// (production: SocketConnector, govpp's socketclient adapter on VPP's API
// socket; tests: a govpp core connection on the mock adapter), and Dial wraps
// it into a Client whose typed methods send exactly one request each and
// turn a non-zero retval into an error. Dial first checks that every message
// the caller will use has the CRC the connected VPP knows
// (CheckCompatibility), so a binapi/VPP version mismatch fails before any
// side effect, naming the messages.
//
// Threading: a Client owns one govpp API channel and must not be shared
// between goroutines.
package vppapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/core"
)

// DefaultSocket is VPP's default binary API socket.
const DefaultSocket = socketclient.DefaultSocketName

// ClientName is how vm-vpp registers with VPP (shown by "show api clients").
const ClientName = "vmcni-vm-vpp"

// Conn is the part of a govpp connection the plugin uses; *core.Connection
// implements it.
type Conn interface {
	NewAPIChannel() (api.Channel, error)
	Disconnect()
}

// Connector opens a connection to the VPP API socket at socket, giving up
// after timeout or when ctx ends. Tests replace it.
type Connector func(ctx context.Context, socket string, timeout time.Duration) (Conn, error)

// Errors of Connect that say why VPP could not be reached. Callers classify
// them with errors.Is (see the plugin's connection rule).
var (
	// ErrNoSocket: the API socket file does not exist (VPP is not running,
	// or has not created its socket yet).
	ErrNoSocket = errors.New("VPP API socket does not exist")
	// ErrNotReady: the socket exists but VPP refused the connection, closed
	// it during the handshake, or did not answer in time (VPP starting,
	// restarting or overloaded).
	ErrNotReady = errors.New("VPP API is not ready")
)

func init() {
	// govpp logs through logrus to stderr; a CNI plugin keeps stderr for its
	// own diagnostics. The plugin logs through slog to its logFile.
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	core.SetLogger(quiet)
	socketclient.SetLogger(quiet)
}

// SocketConnector is the production Connector: govpp's socketclient adapter
// on socket, the handshake bounded by timeout (and ctx).
func SocketConnector(ctx context.Context, socket string, timeout time.Duration) (Conn, error) {
	fi, err := os.Stat(socket)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", ErrNoSocket, socket)
	}
	if err != nil {
		return nil, fmt.Errorf("VPP API socket %q: %w", socket, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("VPP API socket %q is not a socket (%s)", socket, fi.Mode())
	}
	client := socketclient.NewVppClient(socket)
	client.SetClientName(ClientName)
	client.SetConnectTimeout(timeout)

	done := make(chan connResult, 1)
	go func() {
		conn, cerr := core.Connect(client)
		done <- connResult{conn, cerr}
	}()
	timer := time.NewTimer(timeout + time.Second) // the adapter's own timeout fires first
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, classify(socket, r.err)
		}
		return r.conn, nil
	case <-ctx.Done():
		go drain(done)
		return nil, fmt.Errorf("%w: connect to %q: %w", ErrNotReady, socket, ctx.Err())
	case <-timer.C:
		go drain(done)
		return nil, fmt.Errorf("%w: connect to %q: no answer in %s", ErrNotReady, socket, timeout)
	}
}

type connResult struct {
	conn *core.Connection
	err  error
}

// drain closes a connection that completed after its caller gave up.
func drain(done <-chan connResult) {
	if r := <-done; r.conn != nil {
		r.conn.Disconnect()
	}
}

// classify marks the transient connection failures as ErrNotReady.
func classify(socket string, err error) error {
	var netErr interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EAGAIN),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: connect to %q: %w", ErrNotReady, socket, err)
	}
	return fmt.Errorf("connect to VPP API socket %q: %w", socket, err)
}
