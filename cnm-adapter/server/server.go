// Package server serves Docker's remote network driver and remote IPAM
// protocols over HTTP on a unix socket and hands typed requests to an
// api.NetworkDriver and an api.IPAMDriver.
//
// Every request runs with a deadline (WithRequestTimeout). Failures go back
// as {"Err": "..."}: 400 for a body that is not the method's JSON (or is
// missing where the method takes one), 404 for
// an unknown method, 405 for a method other than POST, 500 for a driver
// error or a panic (recovered: a bad request never takes the daemon down).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/net/netutil"

	"github.com/vmcni/vmcni/cnm-adapter/api"
)

// maxBody bounds a request body; Docker's are a few KiB.
const maxBody = 1 << 20

// errEmptyBody answers a request that needs a body and came without one.
// Docker sends those: its plugin client retries a request whose first
// attempt could not connect (the daemon was restarting) with the body the
// first attempt consumed, so the retry is empty. Repeating the docker
// command works.
const errEmptyBody = "empty request body (Docker resends a request without its body when its first attempt found the plugin restarting): retry the command"

// Server is the HTTP side of the plugin.
type Server struct {
	mux     *http.ServeMux
	log     *slog.Logger
	timeout time.Duration
	kinds   []string
}

// Option configures a Server.
type Option func(*Server)

// WithRequestTimeout bounds each request (default 90s: far above a CNI ADD
// or DEL, which take tens of milliseconds).
func WithRequestTimeout(d time.Duration) Option { return func(s *Server) { s.timeout = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// New returns a server for nd and (optionally, nil to disable) ipam.
func New(nd api.NetworkDriver, ipam api.IPAMDriver, opts ...Option) *Server {
	s := &Server{
		mux:     http.NewServeMux(),
		log:     slog.New(slog.DiscardHandler),
		timeout: 90 * time.Second,
	}
	for _, o := range opts {
		o(s)
	}
	if nd != nil {
		s.kinds = append(s.kinds, api.ImplementsNetworkDriver)
		s.registerNetwork(nd)
	}
	if ipam != nil {
		s.kinds = append(s.kinds, api.ImplementsIpamDriver)
		s.registerIPAM(ipam)
	}
	handle(s, "/Plugin.Activate", func(context.Context, *struct{}) (*api.ActivateResponse, error) {
		return &api.ActivateResponse{Implements: s.kinds}, nil
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Response{Err: fmt.Sprintf("unknown method %q", r.URL.Path)})
	})
	return s
}

func empty[Req any](fn func(context.Context, *Req) error) func(context.Context, *Req) (*api.Response, error) {
	return func(ctx context.Context, req *Req) (*api.Response, error) {
		return &api.Response{}, fn(ctx, req)
	}
}

func noBody[Resp any](fn func(context.Context) (*Resp, error)) func(context.Context, *struct{}) (*Resp, error) {
	return func(ctx context.Context, _ *struct{}) (*Resp, error) { return fn(ctx) }
}

func (s *Server) registerNetwork(d api.NetworkDriver) {
	handle(s, "/NetworkDriver.GetCapabilities", noBody(d.Capabilities))
	handle(s, "/NetworkDriver.CreateNetwork", empty(d.CreateNetwork))
	handle(s, "/NetworkDriver.DeleteNetwork", empty(d.DeleteNetwork))
	handle(s, "/NetworkDriver.AllocateNetwork", d.AllocateNetwork)
	handle(s, "/NetworkDriver.FreeNetwork", empty(d.FreeNetwork))
	handle(s, "/NetworkDriver.CreateEndpoint", d.CreateEndpoint)
	handle(s, "/NetworkDriver.DeleteEndpoint", empty(d.DeleteEndpoint))
	handle(s, "/NetworkDriver.EndpointOperInfo", d.EndpointInfo)
	handle(s, "/NetworkDriver.Join", d.Join)
	handle(s, "/NetworkDriver.Leave", empty(d.Leave))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", empty(d.ProgramExternalConnectivity))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", empty(d.RevokeExternalConnectivity))
	handle(s, "/NetworkDriver.DiscoverNew", empty(func(ctx context.Context, n *api.DiscoveryNotification) error {
		return d.Discover(ctx, n, true)
	}))
	handle(s, "/NetworkDriver.DiscoverDelete", empty(func(ctx context.Context, n *api.DiscoveryNotification) error {
		return d.Discover(ctx, n, false)
	}))
}

func (s *Server) registerIPAM(d api.IPAMDriver) {
	handle(s, "/IpamDriver.GetCapabilities", noBody(d.IPAMCapabilities))
	handle(s, "/IpamDriver.GetDefaultAddressSpaces", noBody(d.AddressSpaces))
	handle(s, "/IpamDriver.RequestPool", d.RequestPool)
	handle(s, "/IpamDriver.ReleasePool", empty(d.ReleasePool))
	handle(s, "/IpamDriver.RequestAddress", d.RequestAddress)
	handle(s, "/IpamDriver.ReleaseAddress", empty(d.ReleaseAddress))
}

// handle registers one typed method: decode Req (an empty body is an empty
// Req), call fn under the request deadline, encode Resp or {"Err"}.
func handle[Req, Resp any](s *Server, path string, fn func(context.Context, *Req) (*Resp, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := s.log.With("method", path)
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", "panic", p)
				writeJSON(w, http.StatusInternalServerError, api.Response{Err: fmt.Sprintf("%s: internal error: %v", path, p)})
			}
		}()
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, api.Response{Err: fmt.Sprintf("%s: method %s not allowed, use POST", path, r.Method)})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			writeJSON(w, http.StatusBadRequest, api.Response{Err: fmt.Sprintf("%s: read body: too large or unreadable", path)})
			return
		}
		req := new(Req)
		if _, bodyless := any(req).(*struct{}); len(body) == 0 && !bodyless {
			writeJSON(w, http.StatusBadRequest, api.Response{Err: path + ": " + errEmptyBody})
			return
		}
		if len(body) > 0 && string(body) != "null" {
			if err = json.Unmarshal(body, req); err != nil {
				writeJSON(w, http.StatusBadRequest, api.Response{Err: fmt.Sprintf("%s: decode request: %v", path, err)})
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		resp, err := fn(ctx, req)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("timed out after %s: %w", s.timeout, err)
			}
			log.Warn("request failed", "err", err, "took", time.Since(start))
			writeJSON(w, http.StatusInternalServerError, api.Response{Err: err.Error()})
			return
		}
		log.Debug("request done", "took", time.Since(start))
		writeJSON(w, http.StatusOK, resp)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.ContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// MaxConns bounds the connections served at once: Docker opens a few; a
// local client opening thousands must not exhaust the daemon.
const MaxConns = 64

// Listen creates the unix socket at path (replacing a stale one) with mode
// 0660 and group gid (-1 keeps root's group), so only root and that group
// (docker) can talk to it. The socket is made in a private (0700)
// directory next to path, given its mode and group there, then renamed
// into place: it is never reachable with the umask's mode (a private
// directory a daemon killed meanwhile left goes at the next Listen). At most
// MaxConns connections are served at once.
func Listen(path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir of %q: %w", path, err)
	}
	// private directories of this socket's earlier daemons killed in Listen
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), privatePrefix(path)+"*"))
	for _, dir := range stale {
		_ = os.RemoveAll(dir)
	}
	private, err := os.MkdirTemp(filepath.Dir(path), privatePrefix(path))
	if err != nil {
		return nil, fmt.Errorf("create private dir for %q: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the path it would unlink is the private one
	fail := func(what string, err error) (net.Listener, error) {
		_ = l.Close()
		return nil, fmt.Errorf("%s socket %q: %w", what, path, err)
	}
	if err = os.Chmod(tmp, 0o660); err != nil {
		return fail("chmod", err)
	}
	if gid >= 0 {
		if err = os.Chown(tmp, 0, gid); err != nil {
			return fail("chown", err)
		}
	}
	if err = os.Rename(tmp, path); err != nil { // replaces a stale socket
		return fail("place", err)
	}
	return &unlinking{Listener: netutil.LimitListener(l, MaxConns), path: path}, nil
}

// privatePrefix names Listen's private directories for the socket path:
// one socket name, one daemon.
func privatePrefix(path string) string { return "." + filepath.Base(path) + ".listen-" }

// unlinking removes its socket file when closed.
type unlinking struct {
	net.Listener
	path string
}

func (u *unlinking) Close() error {
	err := u.Listener.Close()
	if rerr := os.Remove(u.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Serve serves on l until ctx ends, then shuts down gracefully (in-flight
// requests get their remaining deadline).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,           // a body trickled in for ever
		WriteTimeout:      s.timeout + 10*time.Second, // past the request's own deadline
		IdleTimeout:       2 * time.Minute,            // idle keep-alive connections
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		err := hs.Shutdown(sctx)
		if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		return err
	}
}
