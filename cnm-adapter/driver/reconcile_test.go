package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/internal/hostcheck"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// fakeDocker answers Reconcile's questions from maps.
type fakeDocker struct {
	nets map[string]*DockerNetwork
}

func (f *fakeDocker) Network(_ context.Context, id string) (*DockerNetwork, error) {
	if n, ok := f.nets[id]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("network %q: %w", id, ErrNoSuchNetwork)
}

func (f *fakeDocker) Networks(context.Context) ([]DockerNetwork, error) {
	var out []DockerNetwork
	for _, n := range f.nets {
		out = append(out, *n)
	}
	return out, nil
}

type fixture struct {
	t     *testing.T
	dir   string
	dirs  []string
	store *state.Store
}

func newFixture(t *testing.T) *fixture {
	testutil.RequiresRoot(t)
	hostcheck.Exclusive(t)
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir}
	for _, sub := range []string{"plugin", "ipam", "cache"} {
		f.dirs = append(f.dirs, filepath.Join(dir, sub))
	}
	st, err := state.Open(filepath.Join(dir, "state.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	return f
}

// driver returns a driver on the fixture's store, as a restarted daemon
// would get.
func (f *fixture) driver(docker Docker) *Driver {
	return New(f.store, WithCNI([]string{testutil.Binaries(f.t)}, f.dirs[2]), WithNamePrefix("vmct"),
		WithPluginStateDir(f.dirs[0]), WithIPAMDataDir(f.dirs[1]), WithDocker(docker), WithGrace(0))
}

// tearCacheEntry empties the libcni cache entry (under cacheDir) whose
// result holds address, as a kill during libcni's in-place write leaves it.
func tearCacheEntry(t *testing.T, cacheDir, address string) {
	t.Helper()
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "results", "*"))
	for _, e := range entries {
		if data, err := os.ReadFile(e); err == nil && strings.Contains(string(data), `"`+address+`/`) {
			must(t, os.Truncate(e, 0))
			return
		}
	}
	t.Fatalf("no libcni cache entry holds %s (entries %q)", address, entries)
}

func id(prefix string) string {
	return fmt.Sprintf("%s%016x%016x%016x%016x", prefix, rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64())[:64]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestJoinAndReconcile: three endpoints joined; then a "restart" finds
// one endpoint Docker still lists (kept, untouched), one Docker forgot
// (CNI DEL, forgotten; its libcni cache entry torn, which libcni's
// DelNetworkList drops) and one caught mid-Join (undone); then Docker
// forgets the network (everything goes, bridge included). The host ends
// exactly as it began.
func TestJoinAndReconcile(t *testing.T) {
	f := newFixture(t)
	before := testutil.TakeSnapshot(t, f.dirs)
	ctx := context.Background()
	d := f.driver(nil)
	nid := id("a")
	bridge := testutil.UniqueName("vmct")
	sub := 100 + rand.IntN(150)
	must(t, d.CreateNetwork(ctx, &api.CreateNetworkRequest{NetworkID: nid,
		Options:  map[string]any{api.GenericOption: map[string]any{"bridge": bridge, "mode": "bridge"}},
		IPv4Data: []api.IPAMData{{Pool: fmt.Sprintf("10.214.%d.0/24", sub), Gateway: fmt.Sprintf("10.214.%d.1/24", sub)}}}))
	t.Cleanup(func() { _ = d.DeleteNetwork(ctx, &api.NetworkRequest{NetworkID: nid}) })
	var eps []string
	for i := 0; i < 3; i++ {
		ep := id(fmt.Sprintf("e%d", i))
		eps = append(eps, ep)
		resp, err := d.CreateEndpoint(ctx, &api.CreateEndpointRequest{NetworkID: nid, EndpointID: ep,
			Interface: &api.EndpointInterface{Address: fmt.Sprintf("10.214.%d.%d/24", sub, 10+i)}})
		must(t, err)
		if resp.Interface == nil || resp.Interface.MacAddress == "" {
			t.Fatalf("no MAC chosen: %+v", resp)
		}
		j, err := d.Join(ctx, &api.JoinRequest{NetworkID: nid, EndpointID: ep, SandboxKey: "/var/run/docker/netns/none"})
		must(t, err)
		if j.Gateway != fmt.Sprintf("10.214.%d.1", sub) || !j.DisableGatewayService || j.InterfaceName.DstPrefix != "eth" {
			t.Fatalf("join response %+v", j)
		}
		l, err := link.ByName(j.InterfaceName.SrcName)
		must(t, err)
		if l.Attrs().HardwareAddr.String() != resp.Interface.MacAddress {
			t.Fatalf("SrcName MAC %s, endpoint MAC %s", l.Attrs().HardwareAddr, resp.Interface.MacAddress)
		}
		if _, err = d.Join(ctx, &api.JoinRequest{NetworkID: nid, EndpointID: ep}); err != nil {
			t.Fatalf("repeated Join: %v", err)
		}
	}
	// A crash during the third Join: the record says "joining".
	ep2, _ := f.store.Endpoint(eps[2])
	ep2.Phase = state.PhaseJoining
	must(t, f.store.PutEndpoint(ep2))

	// The adapter was killed while libcni wrote the second's cache entry.
	tearCacheEntry(t, f.dirs[2], fmt.Sprintf("10.214.%d.11", sub))

	docker := &fakeDocker{nets: map[string]*DockerNetwork{nid: {ID: nid, Containers: map[string]DockerEndpoint{"c0": {EndpointID: eps[0]}}}}}
	d = f.driver(docker) // restart
	must(t, d.Reconcile(ctx))
	if ep, err := f.store.Endpoint(eps[0]); err != nil || ep.Phase != state.PhaseJoined || !link.Exists(ep.SrcName) {
		t.Fatalf("live endpoint touched: %+v %v", ep, err)
	}
	for _, gone := range eps[1:] {
		if _, err := f.store.Endpoint(gone); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("endpoint %s not reconciled: %v", gone[:12], err)
		}
		if link.Exists(d.srcName(gone)) {
			t.Fatalf("link of endpoint %s left", gone[:12])
		}
	}
	delete(docker.nets, nid)
	must(t, d.Reconcile(ctx))
	if c, _ := f.store.Count(); !c.Empty() {
		t.Fatalf("state not empty: %+v", c)
	}
	hostcheck.AssertSameHost(t, before, f.dirs, func(name string) bool {
		if name == bridge {
			return true
		}
		for _, ep := range eps {
			if name == d.srcName(ep) {
				return true
			}
		}
		return false
	})
}

// TestIPAMLeasesAndReconcile: pool, gateway and leases through host-local
// (a wanted address too), release, and reconciliation of a pool Docker
// no longer uses: no lease files remain.
func TestIPAMLeasesAndReconcile(t *testing.T) {
	f := newFixture(t)
	before := testutil.TakeSnapshot(t, f.dirs)
	ctx := context.Background()
	docker := &fakeDocker{nets: map[string]*DockerNetwork{}}
	d := f.driver(docker)
	subnet := fmt.Sprintf("10.215.%d.0/24", rand.IntN(250))
	base := strings.TrimSuffix(subnet, "0/24")
	p, err := d.RequestPool(ctx, &api.RequestPoolRequest{AddressSpace: LocalAddressSpace, Pool: subnet})
	must(t, err)
	if _, err = d.RequestPool(ctx, &api.RequestPoolRequest{AddressSpace: LocalAddressSpace, Pool: base + "128/25"}); err == nil {
		t.Fatal("overlapping pool accepted")
	}
	gw, err := d.RequestAddress(ctx, &api.RequestAddressRequest{PoolID: p.PoolID, Options: map[string]string{api.RequestAddressTypeOption: api.GatewayAddressType}})
	must(t, err)
	if gw.Address != base+"1/24" {
		t.Fatalf("gateway %q", gw.Address)
	}
	a1, err := d.RequestAddress(ctx, &api.RequestAddressRequest{PoolID: p.PoolID})
	must(t, err)
	a2, err := d.RequestAddress(ctx, &api.RequestAddressRequest{PoolID: p.PoolID, Address: base + "77"})
	must(t, err)
	if a1.Address != base+"2/24" || a2.Address != base+"77/24" {
		t.Fatalf("addresses %q %q", a1.Address, a2.Address)
	}
	if _, err = d.RequestAddress(ctx, &api.RequestAddressRequest{PoolID: p.PoolID, Address: base + "77"}); err == nil {
		t.Fatal("a leased address was handed out twice")
	}
	if _, err = d.RequestAddress(ctx, &api.RequestAddressRequest{PoolID: "nope"}); err == nil {
		t.Fatal("unknown pool accepted")
	}
	// An adapter killed while libcni wrote .2's cache entry left it empty:
	// the release goes through all the same.
	tearCacheEntry(t, f.dirs[2], base+"2")
	must(t, d.ReleaseAddress(ctx, &api.ReleaseAddressRequest{PoolID: p.PoolID, Address: base + "2"}))
	must(t, d.ReleaseAddress(ctx, &api.ReleaseAddressRequest{PoolID: p.PoolID, Address: base + "2"})) // twice
	if leases, _ := f.store.Leases(p.PoolID); len(leases) != 1 {
		t.Fatalf("leases %+v", leases)
	}
	// Docker uses the pool and holds .77: reconciliation keeps it.
	dn := &DockerNetwork{ID: "n", Containers: map[string]DockerEndpoint{"c": {IPv4Address: base + "77/24"}}}
	dn.IPAM.Driver = "vmcni"
	dn.IPAM.Config = append(dn.IPAM.Config, struct {
		Subnet  string `json:"Subnet"`
		Gateway string `json:"Gateway"`
	}{Subnet: subnet})
	docker.nets["n"] = dn
	must(t, d.Reconcile(ctx))
	if leases, _ := f.store.Leases(p.PoolID); len(leases) != 1 {
		t.Fatalf("a used lease was released: %+v", leases)
	}
	// The daemon was down while Docker removed the network.
	delete(docker.nets, "n")
	must(t, d.Reconcile(ctx))
	if c, _ := f.store.Count(); !c.Empty() {
		t.Fatalf("state not empty: %+v", c)
	}
	hostcheck.AssertSameHost(t, before, f.dirs, func(string) bool { return false }) // creates no links
}
