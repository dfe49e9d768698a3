package vpp_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/testutil"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// TestBinaryOverSocket runs the built vm-vpp binary through libcni against
// the fake served on a unix socket (the production connector, govpp's
// socketclient, in another process): STATUS, ADD, CHECK, DEL, DEL, GC leave
// the fake's model as it started (but for the l2 bridge domain ADD created,
// which DEL and GC keep by design) and no file in the state, socket and IPAM
// directories.
func TestBinaryOverSocket(t *testing.T) {
	bin := testutil.Binaries(t)
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
			v := fakevpp.New()
			root := t.TempDir()
			apiSocket := filepath.Join(root, "api.sock")
			stop, err := v.ServeSocket(apiSocket)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			stateDir, socketDir, ipamDir := filepath.Join(root, "state"), filepath.Join(root, "sock"), filepath.Join(root, "ipam")
			conf := map[string]any{
				"type": "vm-vpp", "apiSocket": apiSocket, "timeout": "5s",
				"stateDir": stateDir, "socketDir": socketDir, "mtu": 1400,
			}
			for k, val := range c.conf {
				conf[k] = val
			}
			if c.l3 {
				conf["ipam"] = map[string]any{
					"type": "host-local", "dataDir": ipamDir,
					"ranges": []any{[]any{map[string]any{"subnet": "10.78.0.0/24"}}},
				}
			}
			list, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": netName, "plugins": []any{conf}})
			if err != nil {
				t.Fatal(err)
			}
			cni := testutil.NewCNI(t, bin, list)
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
			wantSock := filepath.Join(socketDir, "c1", "eth0", sockName)
			if len(res.Interfaces) != 1 || res.Interfaces[0].SocketPath != wantSock {
				t.Errorf("result interfaces = %+v, want socketPath %s", res.Interfaces, wantSock)
			}
			if c.l3 && (len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.78.0.2/24") {
				t.Errorf("result IPs = %+v", res.IPs)
			}
			ifs := v.Interfaces()
			if len(ifs) != 2 || ifs[1].Tag != vpp.Tag(netName, "c1", "eth0") || !ifs[1].AdminUp || ifs[1].MTU != 1400 {
				t.Errorf("VPP interfaces after ADD = %+v", ifs)
			}
			if h, err := hint.Read(stateDir, "c1", "eth0"); err != nil {
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
			var bds []uint32
			if !c.l3 {
				bds = []uint32{10}
			}
			assertVPPClean(t, v, bds...)
			if ifs := v.Interfaces(); ifs[0].AdminUp || ifs[0].Tag != "" || len(ifs[0].Addrs) != 0 {
				t.Errorf("local0 changed: %+v", ifs[0])
			}
			assertNoFiles(t, stateDir, socketDir)
			if c.l3 {
				if l := leases(t, ipamDir); len(l) != 0 {
					t.Errorf("IPAM leases left: %v", l)
				}
			}
			if u := v.Unknown(); len(u) != 0 {
				t.Errorf("requests the fake does not model: %v", u)
			}
			// One connection per plugin process: STATUS, ADD, CHECK, DEL, DEL, GC.
			if n := v.Connections(); n != 6 {
				t.Errorf("%d VPP connections, want 6", n)
			}
		})
	}
}
