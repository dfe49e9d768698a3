package vpp_test

import (
	"slices"
	"strings"
	"testing"

	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// TestDelIdempotent: DEL after ADD removes the VPP objects (found by tag)
// and every file; a second DEL, and a DEL without any ADD, succeed and
// only read VPP.
func TestDelIdempotent(t *testing.T) {
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			e, ipamDir := comboEnv(t, c)
			e.mustAdd("c1")
			e.vpp.ResetCalls()
			if err := e.del("c1"); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			wantDel := []string{"delete_vhost_user_if"}
			if c.conf["interface"] == "memif" {
				wantDel = []string{"memif_delete", "memif_socket_filename_add_del_v2"}
			}
			if c.l3 { // the recorded guest's host route, the unnumbered setting, then the interface
				wantDel = append([]string{"ip_route_add_del", "sw_interface_set_unnumbered"}, wantDel...)
			}
			if got := withoutDumps(e.vpp.Names()); !slices.Equal(got, wantDel) {
				t.Errorf("DEL requests %v, want %v", got, wantDel)
			}
			if c.l3 {
				checkL3Teardown(t, e.vpp.Calls(), 1, "10.77.0.2")
				if slices.Contains(e.vpp.Names(), "ip_route_dump") {
					t.Error("DEL with a record dumped the routes")
				}
				assertVPPCleanButGateway(t, e.vpp) // DEL never removes the gateway loopback
			} else {
				assertVPPClean(t, e.vpp, 10) // DEL never removes the bridge domain
			}
			assertNoFiles(t, e.stateDir, e.socketDir)
			if ipamDir != "" {
				if l := leases(t, ipamDir); len(l) != 0 {
					t.Errorf("IPAM leases left: %v", l)
				}
			}
			for _, id := range []string{"c1", "never-added"} {
				e.vpp.ResetCalls()
				if err := e.del(id); err != nil {
					t.Fatalf("DEL %s again: %v", id, err)
				}
				if got := withoutDumps(e.vpp.Names()); len(got) != 0 {
					t.Errorf("DEL %s of nothing sent %v", id, got)
				}
			}
			assertNoFiles(t, e.stateDir, e.socketDir)
		})
	}
}

// checkL3Teardown: the route to guest was removed as its path via index
// (a multipath delete, which leaves any other path alone), then index's
// unnumbered setting.
func checkL3Teardown(t *testing.T, calls []fakevpp.Call, index uint32, guest string) {
	t.Helper()
	r := msgOf[*ip.IPRouteAddDel](t, calls, "ip_route_add_del")
	if r.IsAdd || !r.IsMultipath || r.Route.Prefix.String() != guest+"/32" || len(r.Route.Paths) != 1 ||
		r.Route.Paths[0].SwIfIndex != index || r.Route.Paths[0].Nh.Address.GetIP4().String() != guest {
		t.Errorf("route delete = %+v", r)
	}
	un := msgOf[*interfaces.SwInterfaceSetUnnumbered](t, calls, "sw_interface_set_unnumbered")
	if un.IsAdd || un.UnnumberedSwIfIndex != interface_types.InterfaceIndex(index) {
		t.Errorf("unnumbered unset = %+v", un)
	}
}

// TestDelFindsUntaggedMemif: an ADD that crashed between memif_create_v2
// and the tag left an untagged memif; DEL finds it through its socket file.
func TestDelFindsUntaggedMemif(t *testing.T) {
	e := newEnv(t, map[string]any{"interface": "memif"})
	sid := e.vpp.AddMemifSocket(e.socketPath("c1", "memif.sock"))
	e.vpp.AddInterface("memif1/0", "", true, sid)
	if err := e.del("c1"); err != nil {
		t.Fatal(err)
	}
	assertVPPClean(t, e.vpp)
}

// TestCrashAtEachStep leaves ADD's partial state after each step, as a
// crash would, and checks DEL, GC or a new ADD of the same attachment
// cleans it completely.
func TestCrashAtEachStep(t *testing.T) {
	for _, c := range []combo{combos[0], combos[4], combos[5]} {
		e, _ := comboEnv(t, c)
		var steps []string
		if _, err := e.add("c0", plugin.WithStepHook(func(s string) error { steps = append(steps, s); return nil })); err != nil {
			t.Fatal(err)
		}
		for _, step := range steps {
			for _, cleaner := range []string{"DEL", "GC", "ADD"} {
				t.Run(c.name+"/"+step+"/"+cleaner, func(t *testing.T) {
					e, ipamDir := comboEnv(t, c)
					_, err := e.add("c1", plugin.WithoutRollback(), plugin.WithStepHook(func(s string) error {
						if s == step {
							return testutil.ErrInjected
						}
						return nil
					}))
					if err == nil {
						t.Fatal("ADD succeeded")
					}
					switch cleaner {
					case "DEL":
						err = e.del("c1")
					case "GC":
						err = e.plugin(nil).GC(e.args("", "", map[string]any{"cni.dev/valid-attachments": []any{}}))
					case "ADD":
						if _, err = e.add("c1"); err == nil {
							err = e.del("c1")
						}
					}
					if err != nil {
						t.Fatalf("%s: %v", cleaner, err)
					}
					var bds []uint32
					if _, ok := e.vpp.BridgeDomains()[10]; ok {
						bds = []uint32{10}
					}
					assertVPPCleanButGateway(t, e.vpp, bds...)
					assertNoFiles(t, e.stateDir, e.socketDir)
					if ipamDir != "" {
						if l := leases(t, ipamDir); len(l) != 0 {
							t.Errorf("IPAM leases left: %v", l)
						}
					}
				})
			}
		}
	}
}

// TestAddExisting: a second ADD of a complete attachment is code 7 and
// changes nothing.
func TestAddExisting(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAdd("c1")
	e.vpp.ResetCalls()
	_, err := e.add("c1")
	testutil.AssertCode(t, err, 7)
	if got := withoutDumps(e.vpp.Names()); len(got) != 0 {
		t.Errorf("second ADD sent %v", got)
	}
	if n := len(e.vpp.Interfaces()); n != 2 {
		t.Errorf("%d interfaces, want local0 + 1", n)
	}
}

// TestGC removes the stale attachment (record, VPP interface, socket
// directory) and a tagged interface of this network that lost its record;
// keeps the valid attachment; never touches untagged, foreign-tagged or
// other networks' interfaces.
func TestGC(t *testing.T) {
	for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
		t.Run(key, func(t *testing.T) {
			e := newEnv(t, nil)
			e.mustAdd("c-valid")
			e.mustAdd("c-stale")
			untagged := e.vpp.AddInterface("VirtualEthernet0/0/90", "", false, 0)
			foreign := e.vpp.AddInterface("VirtualEthernet0/0/91", "calico-vpp/xyz", false, 0)
			otherNet := e.vpp.AddInterface("VirtualEthernet0/0/92", vpp.Tag("othernet", "c-stale", "eth0"), false, 0)
			e.vpp.AddInterface("VirtualEthernet0/0/93", vpp.Tag(netName, "c-lost", "eth0"), false, 0)
			lostSock := e.vpp.AddMemifSocket("/run/vmcni/vpp/c-lost2/eth0/memif.sock")
			e.vpp.AddInterface("memif1/0", vpp.Tag(netName, "c-lost2", "eth0"), true, lostSock)

			err := e.plugin(nil).GC(e.args("", "", map[string]any{
				key: []map[string]string{{"containerID": "c-valid", "ifname": "eth0"}},
			}))
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			var names []string
			var kept []uint32
			for _, i := range e.vpp.Interfaces() {
				names = append(names, i.Name)
				kept = append(kept, i.Index)
			}
			validTag := vpp.Tag(netName, "c-valid", "eth0")
			var haveValid bool
			for _, i := range e.vpp.Interfaces() {
				haveValid = haveValid || i.Tag == validTag
			}
			if !haveValid || len(names) != 5 {
				t.Errorf("interfaces after GC: %v", names)
			}
			for _, idx := range []uint32{untagged, foreign, otherNet} {
				if !slices.Contains(kept, idx) {
					t.Errorf("GC deleted interface %d it does not own", idx)
				}
			}
			if s := e.vpp.MemifSockets(); len(s) != 1 {
				t.Errorf("memif sockets after GC: %v", s)
			}
			if err := e.plugin(nil).Del(e.args("c-valid", "eth0", nil)); err != nil {
				t.Fatal(err)
			}
			assertNoFiles(t, e.stateDir, e.socketDir)
		})
	}
}

// TestCheck passes after ADD with the ADD's result, and fails once the VPP
// interface is gone or is out of its bridge domain.
func TestCheck(t *testing.T) {
	e := newEnv(t, nil)
	res := e.mustAdd("c1")
	check := func() error {
		return e.plugin(nil).Check(e.args("c1", "eth0", map[string]any{"prevResult": res}))
	}
	if err := check(); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	for _, i := range e.vpp.Interfaces() {
		if i.Tag == vpp.Tag(netName, "c1", "eth0") {
			e.vpp.RemoveInterface(i.Index)
		}
	}
	if err := check(); err == nil || !strings.Contains(err.Error(), "no interface tagged") {
		t.Fatalf("CHECK after the VPP interface vanished: %v", err)
	}
}
