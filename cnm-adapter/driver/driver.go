// Package driver maps Docker's network model (CNM) onto CNI: it implements
// api.NetworkDriver and api.IPAMDriver on top of libcni, with its state in
// a state.Store.
//
// A Docker network is a CNI config: generated for vm-bridge from the -o
// options and Docker's pools, or a conflist file (-o conflist=FILE). Join
// runs CNI ADD in a temporary "transfer" netns and moves the resulting pod
// interface back to the host netns under a unique name, which it returns
// as SrcName: libnetwork then moves it into the sandbox itself, whenever
// the sandbox exists. On networks with -o vmdevice, a watcher started at
// Join waits for the interface to land in the sandbox and runs vm-bridge
// chained on it (tap/macvtap and hint file); Leave undoes that.
// DeleteEndpoint replays the recorded conflist and RuntimeConf with CNI
// DEL. Reconcile (at start) removes what Docker no longer knows.
package driver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmcni/vmcni/cnm-adapter/state"
)

// Driver is the CNM network and IPAM driver.
type Driver struct {
	store      *state.Store
	log        *slog.Logger
	cniPath    []string
	cacheDir   string
	cni        *libcni.CNIConfig // runs network configs
	ipamCNI    *libcni.CNIConfig // runs host-local alone (CNI_NETNS_OVERRIDE)
	docker     Docker
	prefix     string
	stateDir   string
	ipamDir    string
	grace      time.Duration
	pools      []string
	defaultOpt map[string]string

	vmTimeout time.Duration

	locks keyedMutex // serializes work per network and per endpoint ID
	vmw   vmWatches  // sandbox watchers of endpoints waiting for their VM device
}

// Option configures a Driver.
type Option func(*Driver)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// WithCNI sets the plugin search path and libcni's result cache dir
// (defaults: /opt/cni/bin, /var/lib/vmcni/cnm/cache).
func WithCNI(path []string, cacheDir string) Option {
	return func(d *Driver) { d.cniPath, d.cacheDir = path, cacheDir }
}

// WithDocker sets the Docker API client used by Reconcile (default: none;
// reconciliation then only cleans interrupted operations).
func WithDocker(c Docker) Option { return func(d *Driver) { d.docker = c } }

// WithNamePrefix sets the prefix of the links and netns the adapter
// creates (default "vcnm"; at most 4 bytes).
func WithNamePrefix(p string) Option { return func(d *Driver) { d.prefix = p } }

// WithPluginStateDir sets vm-bridge's stateDir in generated configs
// (default: the plugin's own default, /var/lib/cni/vmcni).
func WithPluginStateDir(dir string) Option { return func(d *Driver) { d.stateDir = dir } }

// WithIPAMDataDir sets host-local's dataDir for the IPAM driver (default:
// host-local's own, /var/lib/cni/networks, shared with CNI users).
func WithIPAMDataDir(dir string) Option { return func(d *Driver) { d.ipamDir = dir } }

// WithGrace sets how old a record must be before Reconcile deletes it for
// not being known to Docker yet (default 2m: Docker creates endpoints and
// pools some time before they show up in its API).
func WithGrace(g time.Duration) Option { return func(d *Driver) { d.grace = g } }

// WithVMDeviceTimeout sets how long after Join the adapter waits for
// libnetwork to move the interface into the sandbox before giving up on
// the VM device of a -o vmdevice network (default 1m).
func WithVMDeviceTimeout(t time.Duration) Option { return func(d *Driver) { d.vmTimeout = t } }

// WithDefaultPools sets the subnets the IPAM driver hands out when Docker
// asks for any pool (default 10.213.0.0/24 ... 10.213.255.0/24).
func WithDefaultPools(cidrs ...string) Option { return func(d *Driver) { d.pools = cidrs } }

// WithDefaultNetworkOptions sets -o defaults applied to every network
// (e.g. {"mode": "macvtap"}).
func WithDefaultNetworkOptions(o map[string]string) Option {
	return func(d *Driver) { d.defaultOpt = o }
}

// New returns a driver on st.
func New(st *state.Store, opts ...Option) *Driver {
	d := &Driver{
		store:  st,
		log:    slog.New(slog.DiscardHandler),
		prefix: "vcnm",
		grace:  2 * time.Minute,

		vmTimeout: time.Minute,
	}
	for _, o := range opts {
		o(d)
	}
	if len(d.cniPath) == 0 {
		d.cniPath = []string{"/opt/cni/bin"}
	}
	if d.cacheDir == "" {
		d.cacheDir = "/var/lib/vmcni/cnm/cache"
	}
	base := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	d.cni = libcni.NewCNIConfigWithCacheDir(d.cniPath, d.cacheDir, base)
	d.ipamCNI = libcni.NewCNIConfigWithCacheDir(d.cniPath, d.cacheDir, netnsOverrideExec{base})
	if len(d.prefix) > 4 {
		d.prefix = d.prefix[:4]
	}
	if len(d.pools) == 0 {
		for i := 0; i < 256; i++ {
			d.pools = append(d.pools, fmt.Sprintf("10.213.%d.0/24", i))
		}
	}
	return d
}

// keyedMutex hands out one mutex per key.
type keyedMutex struct {
	mu sync.Mutex // guards m
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex // held by the goroutine working on the key
	refs int        // goroutines holding or waiting; guarded by keyedMutex.mu
}

// lock locks key, waiting at most until ctx ends; the returned func unlocks.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	got := make(chan struct{})
	go func() {
		e.mu.Lock()
		close(got)
	}()
	select {
	case <-got:
		return func() { e.mu.Unlock(); release() }, nil
	case <-ctx.Done():
		go func() { <-got; e.mu.Unlock(); release() }()
		return nil, fmt.Errorf("wait for lock on %q: %w", key, ctx.Err())
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// validID accepts Docker's IDs: 12 to 128 letters and digits.
func validID(what, id string) error {
	if len(id) < 12 || len(id) > 128 {
		return fmt.Errorf("%s %q must be 12 to 128 characters", what, id)
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return fmt.Errorf("%s %q may hold only letters and digits", what, id)
		}
	}
	return nil
}

// netnsOverrideExec runs an IPAM plugin on its own: there is no pod netns
// yet, and skel refuses ADD when CNI_NETNS is the plugin's own netns
// unless CNI_NETNS_OVERRIDE is set.
type netnsOverrideExec struct{ invoke.Exec }

// ExecPlugin implements invoke.Exec.
func (e netnsOverrideExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	return e.Exec.ExecPlugin(ctx, path, stdin, append(env, "CNI_NETNS_OVERRIDE=1"))
}
