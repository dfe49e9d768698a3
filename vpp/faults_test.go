package vpp_test

import (
	"errors"
	"slices"
	"testing"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/l2"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// rollbackOf is what undoes each creating request (read-only dumps the
// undo steps send are left out of comparisons).
var rollbackOf = map[string]string{
	"bridge_domain_add_del_v2":         "bridge_domain_add_del_v2",
	"create_vhost_user_if_v2":          "delete_vhost_user_if",
	"memif_socket_filename_add_del_v2": "memif_socket_filename_add_del_v2",
	"memif_create_v2":                  "memif_delete",
	"create_loopback":                  "delete_loopback", // (its tag, flags and addresses go with it)
	"sw_interface_set_unnumbered":      "sw_interface_set_unnumbered",
	"ip_route_add_del":                 "ip_route_add_del",
}

// TestRetvalAtEachStep makes VPP refuse each request of ADD in turn (a
// non-zero retval) and checks ADD fails, sends exactly the delete requests
// of what it created before, in reverse, and leaves VPP, the IPAM plugin,
// the state and socket directories as they were.
func TestRetvalAtEachStep(t *testing.T) {
	for _, c := range combos {
		mutating := withoutDumps(c.want)
		for k, failing := range mutating {
			t.Run(c.name+"/"+failing, func(t *testing.T) {
				e, ipamDir := comboEnv(t, c)
				for _, earlier := range mutating[:k] { // requests of the same name before it pass
					if earlier == failing {
						e.vpp.FailNext(failing, 0)
					}
				}
				e.vpp.FailNext(failing, int32(api.UNSPECIFIED))
				_, err := e.add("c1")
				if err == nil {
					t.Fatal("ADD succeeded")
				}
				if !errors.Is(err, api.UNSPECIFIED) {
					t.Errorf("error does not wrap VPP's retval: %v", err)
				}
				names := withoutDumps(e.vpp.Names())
				if !slices.Equal(names[:k+1], mutating[:k+1]) {
					t.Fatalf("requests before the failure: %v", names)
				}
				var want []string
				for j := k - 1; j >= 0; j-- {
					if r, ok := rollbackOf[mutating[j]]; ok {
						want = append(want, r)
					}
				}
				if got := names[k+1:]; !slices.Equal(got, want) {
					t.Errorf("rollback requests\n got %v\nwant %v", got, want)
				}
				for _, call := range e.vpp.Calls() {
					if bd, ok := call.Msg.(*l2.BridgeDomainAddDelV2); ok && !bd.IsAdd && bd.BdID != 10 {
						t.Errorf("deleted bridge domain %d", bd.BdID)
					}
				}
				assertVPPClean(t, e.vpp)
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

// TestFaultAfterEachStep fails ADD at each of its fault points (the local
// ones too: record, IPAM, socket directory, device-info file, hint), each
// in a fresh VPP, and checks everything is rolled back; then crashes ADD
// there and checks DEL or GC cleans up. What DEL keeps on purpose (the l2
// bridge domain, the l3 gateway loopback) is left out of the comparison;
// TestRetvalAtEachStep and TestRollbackKeepsBridgeDomain pin those down.
func TestFaultAfterEachStep(t *testing.T) {
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			var e *env
			var ipamDir string
			devInfo := func() string { return e.stateDir + "-devinfo.json" }
			args := func(extra map[string]any) *skel.CmdArgs {
				if extra == nil {
					extra = map[string]any{}
				}
				extra["runtimeConfig"] = map[string]any{"CNIDeviceInfoFile": devInfo()}
				return e.args("c1", "eth0", extra)
			}
			testutil.FaultSweep{
				Reset: func() { e, ipamDir = comboEnv(t, c) },
				Add: func(opts ...plugin.Option) error {
					_, err := e.addArgs(args(nil), opts...)
					return err
				},
				Del: func() error { return e.plugin(nil).Del(args(nil)) },
				GC: func() error {
					return e.plugin(nil).GC(args(map[string]any{"cni.dev/valid-attachments": []any{}}))
				},
				Same: func(t testing.TB, when string) {
					t.Helper()
					assertVPPCleanButGateway(t, e.vpp, keptBridgeDomains(e.vpp)...)
					assertNoFiles(t, e.stateDir, e.socketDir)
					if testutil.FileExists(devInfo()) {
						t.Errorf("%s: device-info file left", when)
					}
					if ipamDir != "" {
						if l := leases(t, ipamDir); len(l) != 0 {
							t.Errorf("%s: IPAM leases left: %v", when, l)
						}
					}
				},
				Crash:    true,
				FailUndo: true,
			}.Run(t)
		})
	}
}

// keptBridgeDomains are the bridge domains VPP holds: DEL keeps the l2
// network's, as the reference bridge plugin keeps its bridge.
func keptBridgeDomains(v *fakevpp.VPP) []uint32 {
	var ids []uint32
	for id := range v.BridgeDomains() {
		ids = append(ids, id)
	}
	return ids
}

// TestRollbackKeepsBridgeDomain: a failed ADD never deletes a bridge
// domain it did not create, nor one it created that another interface
// joined in the meantime.
func TestRollbackKeepsBridgeDomain(t *testing.T) {
	t.Run("pre-existing", func(t *testing.T) {
		e := newEnv(t, nil)
		e.vpp.AddBridgeDomain(10)
		e.vpp.FailNext("sw_interface_set_flags", int32(api.UNSPECIFIED))
		if _, err := e.add("c1"); err == nil {
			t.Fatal("ADD succeeded")
		}
		want := []string{"bridge_domain_dump", "create_vhost_user_if_v2", "sw_interface_set_mtu",
			"sw_interface_set_l2_bridge", "sw_interface_set_flags", "delete_vhost_user_if"}
		if got := e.vpp.Names(); !slices.Equal(got, want) {
			t.Errorf("requests\n got %v\nwant %v", got, want)
		}
		assertVPPClean(t, e.vpp, 10)
	})
	t.Run("joined meanwhile", func(t *testing.T) {
		e := newEnv(t, nil)
		other := e.vpp.AddInterface("VirtualEthernet0/0/9", "", false, 0)
		_, err := e.add("c1", plugin.WithStepHook(func(s string) error {
			if s == "admin-up" {
				e.vpp.JoinBridgeDomain(10, other)
				return testutil.ErrInjected
			}
			return nil
		}))
		if !errors.Is(err, testutil.ErrInjected) {
			t.Fatalf("ADD error = %v", err)
		}
		bd, ok := e.vpp.BridgeDomains()[10]
		if !ok || !slices.Equal(bd.Members, []uint32{other}) {
			t.Errorf("bridge domain 10 = %+v, %v; want kept with member %d", bd, ok, other)
		}
		if n := len(e.vpp.Interfaces()); n != 2 {
			t.Errorf("%d interfaces, want local0 and the other one", n)
		}
	})
}
