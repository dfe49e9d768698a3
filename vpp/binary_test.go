package vpp_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// TestBinaryOverSocket runs the built vm-vpp binary through libcni against
// the fake served on a unix socket (the production connector, govpp's
// socketclient, in another process): STATUS, ADD, CHECK, DEL, DEL, GC leave
// the fake's model as it started (but for the l2 bridge domain or the l3
// gateway loopback ADD created, which DEL and GC keep by design) and no
// file in the state, socket and IPAM directories.
func TestBinaryOverSocket(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]any
		l3   bool
	}{
		{"vhost-user/vmm-server/l2", map[string]any{"mode": "server", "bridgeDomain": 10}, false},
		{"vhost-user/vmm-client/l2", map[string]any{"mode": "client", "bridgeDomain": 10}, false},
		{"memif/l3", map[string]any{"interface": "memif", "network": "l3", "memif": map[string]any{"mode": "ip"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBinaryEnv(t, c.conf, c.l3)
			v, cni := b.vpp, b.cni
			rt := testutil.Runtime("c1", "/var/run/netns/c1", "eth0")

			if err := cni.Status(); err != nil {
				t.Fatalf("STATUS: %v", err)
			}
			res, err := cni.Add(rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			sockName := "vhu.sock"
			if c.l3 {
				sockName = "memif.sock"
			}
			wantSock := filepath.Join(b.socketDir, "c1", "eth0", sockName)
			if len(res.Interfaces) != 1 || res.Interfaces[0].SocketPath != wantSock {
				t.Errorf("result interfaces = %+v, want socketPath %s", res.Interfaces, wantSock)
			}
			if c.l3 && (len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.78.0.2/24") {
				t.Errorf("result IPs = %+v", res.IPs)
			}
			ifs := v.Interfaces()
			n := 2
			if c.l3 {
				n = 3 // and the gateway loopback
			}
			if len(ifs) != n || ifs[1].Tag != vpp.Tag(netName, "c1", "eth0") || !ifs[1].AdminUp || ifs[1].MTU != 1400 {
				t.Errorf("VPP interfaces after ADD = %+v", ifs)
			}
			if h, err := hint.Read(b.stateDir, "c1", "eth0"); err != nil {
				t.Errorf("hint: %v", err)
			} else if c.l3 != (h.Kind == hint.KindMemif) {
				t.Errorf("hint kind %q", h.Kind)
			}

			if err := cni.Check(rt); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			for i := range 2 {
				if err := cni.Del(rt); err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
			}
			if err := cni.GC(); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if c.l3 {
				b.assertOnlyGatewayKept()
			} else {
				assertVPPClean(t, v, 10)
			}
			if ifs := v.Interfaces(); ifs[0].AdminUp || ifs[0].Tag != "" || len(ifs[0].Addrs) != 0 {
				t.Errorf("local0 changed: %+v", ifs[0])
			}
			b.assertNoLeftovers()
			// One connection per plugin process: STATUS, ADD, CHECK, DEL, DEL, GC.
			if n := v.Connections(); n != 6 {
				t.Errorf("%d VPP connections, want 6", n)
			}
		})
	}
}

// TestBinaryL3SharedSubnet runs three ADDs at once, as three vm-vpp
// processes on the same l3 subnet, through the socket: all succeed, share
// one gateway loopback (created once: the network lock) and each gets its
// own host route; CHECK passes for each; after the DELs, also concurrent,
// VPP is as it started but for the kept gateway loopback.
func TestBinaryL3SharedSubnet(t *testing.T) {
	b := newBinaryEnv(t, map[string]any{"network": "l3"}, true)
	v, cni := b.vpp, b.cni
	ids := []string{"c1", "c2", "c3"}
	results := make([]*current.Result, len(ids))
	concurrently(t, ids, func(i int, id string) error {
		res, err := cni.Add(testutil.Runtime(id, "/var/run/netns/"+id, "eth0"))
		results[i] = res
		return err
	})
	if t.Failed() {
		t.FailNow()
	}
	ifs := v.Interfaces()
	var loop fakevpp.Iface
	for _, i := range ifs {
		if i.Loopback {
			if loop.Loopback {
				t.Fatalf("two loopbacks: %+v", ifs)
			}
			loop = i
		}
	}
	if loop.Tag != vpp.GatewayTag(netName) || loop.Name != "loop0" || !loop.AdminUp || !slices.Equal(loop.Addrs, []string{"10.78.0.1/24"}) {
		t.Errorf("gateway loopback = %+v", loop)
	}
	routes := v.Routes()
	if len(ifs) != 1+len(ids)+1 || len(routes) != len(ids) {
		t.Fatalf("interfaces %+v\nroutes %+v", ifs, routes)
	}
	seen := map[string]bool{}
	for k, id := range ids {
		res := results[k]
		if len(res.IPs) != 1 || res.IPs[0].Gateway.String() != "10.78.0.1" || seen[res.IPs[0].Address.IP.String()] {
			t.Fatalf("%s: result IPs %+v", id, res.IPs)
		}
		guest := res.IPs[0].Address.IP.String()
		seen[guest] = true
		var att fakevpp.Iface
		for _, i := range ifs {
			if i.Tag == vpp.Tag(netName, id, "eth0") {
				att = i
			}
		}
		if !att.Unnumbered || att.UnnumberedSource != loop.Index || !att.AdminUp || len(att.Addrs) != 0 {
			t.Errorf("%s: interface %+v, want unnumbered to %d", id, att, loop.Index)
		}
		want := fakevpp.Route{Prefix: guest + "/32", Paths: []fakevpp.RoutePath{{SwIfIndex: att.Index, NextHop: guest}}}
		if !slices.ContainsFunc(routes, func(r fakevpp.Route) bool { return r.Prefix == want.Prefix && slices.Equal(r.Paths, want.Paths) }) {
			t.Errorf("%s: no route %+v in %+v", id, want, routes)
		}
		if err := cni.Check(testutil.Runtime(id, "/var/run/netns/"+id, "eth0")); err != nil {
			t.Errorf("%s: CHECK: %v", id, err)
		}
	}
	concurrently(t, ids, func(_ int, id string) error {
		return cni.Del(testutil.Runtime(id, "/var/run/netns/"+id, "eth0"))
	})
	b.assertOnlyGatewayKept()
	b.assertNoLeftovers()
}

// concurrently runs fn for every id at once and reports each error.
func concurrently(t *testing.T, ids []string, fn func(i int, id string) error) {
	t.Helper()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, id)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", ids[i], err)
		}
	}
}

// binaryEnv is the fake served on a unix socket and libcni running the
// built vm-vpp binary on a network config.
type binaryEnv struct {
	t                            *testing.T
	vpp                          *fakevpp.VPP
	cni                          *testutil.CNI
	stateDir, socketDir, ipamDir string
	l3                           bool
}

// newBinaryEnv serves a new fake and configures the network: conf over
// the base config (mtu 1400), with host-local on 10.78.0.0/24 when l3.
func newBinaryEnv(t *testing.T, overrides map[string]any, l3 bool) *binaryEnv {
	bin := testutil.Binaries(t)
	v := fakevpp.New()
	root := t.TempDir()
	apiSocket := filepath.Join(root, "api.sock")
	stop, err := v.ServeSocket(apiSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	b := &binaryEnv{t: t, vpp: v, l3: l3,
		stateDir: filepath.Join(root, "state"), socketDir: filepath.Join(root, "sock"), ipamDir: filepath.Join(root, "ipam")}
	conf := map[string]any{
		"type": "vm-vpp", "apiSocket": apiSocket, "timeout": "5s",
		"stateDir": b.stateDir, "socketDir": b.socketDir, "mtu": 1400,
	}
	for k, val := range overrides {
		conf[k] = val
	}
	if l3 {
		conf["ipam"] = map[string]any{
			"type": "host-local", "dataDir": b.ipamDir,
			"ranges": []any{[]any{map[string]any{"subnet": "10.78.0.0/24"}}},
		}
	}
	list, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": netName, "plugins": []any{conf}})
	if err != nil {
		t.Fatal(err)
	}
	b.cni = testutil.NewCNI(t, bin, list)
	t.Cleanup(func() {
		if u := v.Unknown(); len(u) != 0 {
			t.Errorf("requests the fake does not model: %v", u)
		}
	})
	return b
}

// assertOnlyGatewayKept: VPP holds what it started with plus the l3
// network's gateway loopback (loop0, tagged vpp.GatewayTag, up, with the
// gateway address), which nothing uses; no route is left.
func (b *binaryEnv) assertOnlyGatewayKept() {
	t := b.t
	t.Helper()
	assertVPPCleanButGateway(t, b.vpp)
	ifs := b.vpp.Interfaces()
	if len(ifs) != 2 || ifs[1].Name != "loop0" || ifs[1].Tag != vpp.GatewayTag(netName) ||
		!slices.Equal(ifs[1].Addrs, []string{"10.78.0.1/24"}) {
		t.Errorf("VPP interfaces = %+v, want local0 and the kept gateway loopback", ifs)
	}
}

// assertNoLeftovers: no file in the state and socket directories, no
// IPAM lease.
func (b *binaryEnv) assertNoLeftovers() {
	b.t.Helper()
	assertNoFiles(b.t, b.stateDir, b.socketDir)
	if b.l3 {
		if l := leases(b.t, b.ipamDir); len(l) != 0 {
			b.t.Errorf("IPAM leases left: %v", l)
		}
	}
}
