package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registerTimeout bounds one Register call. The kubelet dials the plugin
// back (up to 10s) before it answers.
const registerTimeout = 15 * time.Second

// Plugin is a running device plugin. Its methods are safe for concurrent use.
type Plugin struct {
	opts        Options
	log         *slog.Logger
	socketPath  string
	kubeletSock string
	env         string
	devices     map[string]bool

	cancel  context.CancelFunc
	done    chan struct{} // closed once run has shut the plugin down
	stopErr error         // written by run before it closes done

	// Owned by the goroutine driving the plugin (Start, then run): no lock.
	srv        *grpc.Server
	served     chan struct{} // closed when srv.Serve has returned
	socket     os.FileInfo   // the socket srv listens on, as created
	registered os.FileInfo   // kubelet.sock when registration last succeeded
	failing    bool          // the last sync failed: further failures log at debug

	// allocMu guards allocs.
	allocMu sync.Mutex
	allocs  [][]string
}

// Start serves the v1beta1 DevicePlugin API on KubeletDir/SocketName(ResourceName),
// registers with the kubelet, and returns once the kubelet accepted the
// registration (waiting up to StartTimeout). The plugin then serves until ctx
// ends or Stop, registering again whenever the kubelet restarts.
func Start(ctx context.Context, o Options) (*Plugin, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("device plugin options: %w", err)
	}
	p := &Plugin{
		opts:        o,
		socketPath:  filepath.Join(o.KubeletDir, SocketName(o.ResourceName)),
		kubeletSock: filepath.Join(o.KubeletDir, "kubelet.sock"),
		env:         EnvName(o.ResourceName),
		devices:     make(map[string]bool, len(o.Devices)),
		done:        make(chan struct{}),
	}
	p.log = o.Logger.With("resource", o.ResourceName, "socket", p.socketPath)
	for _, d := range o.Devices {
		p.devices[d] = true
	}
	if err := p.serve(); err != nil {
		return nil, err
	}
	if err := p.firstSync(ctx); err != nil {
		return nil, errors.Join(err, p.shutdown())
	}
	ctx, p.cancel = context.WithCancel(ctx)
	go p.run(ctx)
	return p, nil
}

// Stop stops serving, which ends the kubelet's ListAndWatch stream, and
// removes the plugin's socket if it is still the plugin's own. It returns
// the same result when called again or after Start's ctx ended.
func (p *Plugin) Stop() error {
	p.cancel()
	<-p.done
	return p.stopErr
}

// SocketPath returns the path of the socket the plugin serves.
func (p *Plugin) SocketPath() string { return p.socketPath }

// Allocations returns the device IDs of every container request Allocate
// granted, in the order they were granted.
func (p *Plugin) Allocations() [][]string {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	out := make([][]string, len(p.allocs))
	for i, a := range p.allocs {
		out[i] = append([]string(nil), a...)
	}
	return out
}

// firstSync retries sync until the first registration succeeded.
func (p *Plugin) firstSync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(p.opts.PollInterval)
	defer tick.Stop()
	for {
		err := p.sync(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register %q with the kubelet at %q (waited %s): %w",
				p.opts.ResourceName, p.kubeletSock, p.opts.StartTimeout, err)
		case <-tick.C:
		}
	}
}

// run keeps the plugin registered until ctx ends, then shuts it down.
func (p *Plugin) run(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(p.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.stopErr = p.shutdown()
			p.log.Info("device plugin stopped", "err", p.stopErr)
			return
		case <-tick.C:
			_ = p.sync(ctx) // sync logs; failures are retried next tick
		}
	}
}

// sync serves a new socket if the plugin's own is gone or replaced, and
// registers if kubelet.sock is not the one last registered with. It
// returns nil when the plugin is served and registered.
func (p *Plugin) sync(ctx context.Context) error {
	kubelet, err := os.Stat(p.kubeletSock)
	if err != nil {
		if p.registered != nil {
			p.log.Info("kubelet socket gone: waiting for the kubelet", "kubelet", p.kubeletSock)
			p.registered = nil
		}
		return fmt.Errorf("kubelet socket %q: %w", p.kubeletSock, err)
	}
	if own, _ := os.Stat(p.socketPath); !sameFile(p.socket, own) {
		p.log.Info("plugin socket gone or replaced: serving a new one")
		p.stopServing()
		p.socket, p.registered = nil, nil
		if err := p.serve(); err != nil {
			p.report(err)
			return err
		}
	}
	if sameFile(p.registered, kubelet) {
		return nil
	}
	if err := p.register(ctx); err != nil {
		p.report(err)
		return err
	}
	p.registered, p.failing = kubelet, false
	p.log.Info("registered with the kubelet", "kubelet", p.kubeletSock)
	return nil
}

// report logs a failed sync: the first of a run at warning level, the
// others (retried every PollInterval) at debug level.
func (p *Plugin) report(err error) {
	level := slog.LevelWarn
	if p.failing {
		level = slog.LevelDebug
	}
	p.failing = true
	p.log.Log(context.Background(), level, "device plugin not registered; retrying", "err", err)
}

// register sends the plugin's RegisterRequest to the kubelet.
func (p *Plugin) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+p.kubeletSock,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to the kubelet at %q: %w", p.kubeletSock, err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socketPath),
		ResourceName: p.opts.ResourceName,
		Options:      &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		return fmt.Errorf("register %q with the kubelet at %q: %w", p.opts.ResourceName, p.kubeletSock, err)
	}
	return nil
}

// serve listens on the plugin's socket, replacing a stale one, and serves
// the DevicePlugin API on it.
func (p *Plugin) serve() error {
	if err := clearStaleSocket(p.socketPath); err != nil {
		return err
	}
	l, err := net.Listen("unix", p.socketPath)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", p.socketPath, err)
	}
	// The kubelet may delete the file and another may take the path:
	// shutdown removes it only if it is still this listener's.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	fi, err := os.Stat(p.socketPath)
	if err != nil {
		_ = l.Close()
		_ = os.Remove(p.socketPath)
		return fmt.Errorf("stat the new socket %q: %w", p.socketPath, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, &service{p: p})
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil {
			p.log.Warn("device plugin server failed", "err", err)
		}
	}()
	p.srv, p.served, p.socket = srv, served, fi
	p.log.Debug("serving the device plugin API")
	return nil
}

// stopServing stops the gRPC server, ending every stream, and waits for it.
func (p *Plugin) stopServing() {
	if p.srv == nil {
		return
	}
	p.srv.Stop()
	<-p.served
	p.srv, p.served = nil, nil
}

// shutdown stops serving and removes the socket if it is still the one the
// plugin created.
func (p *Plugin) shutdown() error {
	p.stopServing()
	own := p.socket
	p.socket = nil
	if fi, err := os.Stat(p.socketPath); err != nil || !sameFile(own, fi) {
		return nil // gone already, or no longer the plugin's
	}
	if err := os.Remove(p.socketPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the device plugin socket %q: %w", p.socketPath, err)
	}
	return nil
}

// clearStaleSocket removes a socket left at path by a plugin that is gone.
// It refuses to remove anything else, or a socket someone still serves.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %q: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%q exists and is not a socket", path)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = conn.Close()
		return fmt.Errorf("another process serves %q", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale socket %q: %w", path, err)
	}
	return nil
}

// sameFile reports whether a and b are the same file, created at the same
// time: a deleted socket's inode number can come back for the next one.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime())
}
