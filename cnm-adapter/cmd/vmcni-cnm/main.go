// Command vmcni-cnm is vmcni's Docker network driver and IPAM driver: a
// daemon serving libnetwork's remote driver protocols on
// /run/docker/plugins/NAME.sock and running CNI plugins through libcni.
// See cnm-adapter/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/driver"
	"github.com/vmcni/vmcni/cnm-adapter/server"
	"github.com/vmcni/vmcni/cnm-adapter/state"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vmcni-cnm:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		name        = flag.String("name", "vmcni", "driver name: docker network create -d NAME (and --ipam-driver NAME)")
		socketDir   = flag.String("socket-dir", "/run/docker/plugins", "directory of NAME.sock")
		socketGroup = flag.String("socket-group", "docker", "group allowed to use the socket (mode 0660); missing group: root only")
		stateDir    = flag.String("state-dir", "/var/lib/vmcni/cnm", "state database and libcni cache")
		cniPath     = flag.String("cni-path", "/opt/cni/bin", "colon-separated CNI plugin directories")
		pluginState = flag.String("plugin-state-dir", "", "vm-bridge stateDir in generated configs (default: vm-bridge's)")
		ipamDir     = flag.String("ipam-data-dir", "", "host-local dataDir for the IPAM driver (default: host-local's, shared with CNI users)")
		dockerHost  = flag.String("docker-host", "unix:///var/run/docker.sock", "Docker API socket, for reconciliation")
		prefix      = flag.String("name-prefix", "vcnm", "prefix (at most 4 bytes) of links and netns the adapter creates")
		timeout     = flag.Duration("request-timeout", 90*time.Second, "deadline of each request")
		interval    = flag.Duration("reconcile-interval", 5*time.Minute, "how often to reconcile with Docker (0: only at start)")
		grace       = flag.Duration("grace", 2*time.Minute, "minimum age of a record before reconciliation may delete it")
		vmTimeout   = flag.Duration("vm-device-timeout", time.Minute, "how long after Join to wait for the interface in the sandbox (-o vmdevice networks)")
		noIPAM      = flag.Bool("no-ipam", false, "do not serve the IPAM driver")
		logLevel    = flag.String("log-level", "info", "debug, info, warn or error")
	)
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", *logLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	st, err := state.Open(filepath.Join(*stateDir, "state.db"), 10*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	docker, err := driver.NewDockerClient(*dockerHost)
	if err != nil {
		return err
	}
	d := driver.New(st,
		driver.WithLogger(log),
		driver.WithCNI(strings.Split(*cniPath, ":"), filepath.Join(*stateDir, "cache")),
		driver.WithDocker(docker),
		driver.WithNamePrefix(*prefix),
		driver.WithPluginStateDir(*pluginState),
		driver.WithIPAMDataDir(*ipamDir),
		driver.WithGrace(*grace),
		driver.WithVMDeviceTimeout(*vmTimeout),
	)
	defer d.StopVMWatches()
	var ipam api.IPAMDriver
	if !*noIPAM {
		ipam = d
	}
	srv := server.New(d, ipam, server.WithLogger(log), server.WithRequestTimeout(*timeout))
	gid := -1
	if g, gerr := user.LookupGroup(*socketGroup); gerr == nil {
		gid, _ = strconv.Atoi(g.Gid)
	} else {
		log.Warn("socket group not found: socket is root-only", "group", *socketGroup)
	}
	sock := filepath.Join(*socketDir, *name+".sock")
	l, err := server.Listen(sock, gid)
	if err != nil {
		return err
	}
	defer os.Remove(sock)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Serve first, reconcile in the background: a starting dockerd calls
	// the plugin before its API answers, so waiting on it would stall both.
	go reconcileLoop(ctx, d, log, *interval)
	log.Info("serving", "socket", sock, "stateDir", *stateDir)
	return srv.Serve(ctx, l)
}

// reconcileLoop reconciles at start (retrying every 10s until Docker
// answers) and then every interval.
func reconcileLoop(ctx context.Context, d *driver.Driver, log *slog.Logger, interval time.Duration) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := d.Reconcile(rctx)
		cancel()
		switch {
		case err != nil:
			log.Warn("reconcile failed; retrying", "err", err)
			wait = 10 * time.Second
		case interval <= 0:
			log.Info("reconciled")
			return
		default:
			log.Debug("reconciled")
			wait = interval
		}
	}
}
