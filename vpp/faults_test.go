package vpp_test

import (
	"errors"
	"os"
	"slices"
	"testing"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/l2"

	"github.com/vmcni/vmcni/internal/plugin"
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

var errInjected = errors.New("injected fault")

// TestFaultAfterEachStep fails ADD right after each of its side effects
// (including the local ones: record, IPAM, socket directory, device-info
// file, hint) and checks everything is rolled back.
func TestFaultAfterEachStep(t *testing.T) {
	for _, c := range combos {
		e, _ := comboEnv(t, c)
		var steps []string
		args := e.args("c0", "eth0", map[string]any{"runtimeConfig": map[string]any{"CNIDeviceInfoFile": e.stateDir + "-c0.json"}})
		if _, err := e.addArgs(args, plugin.WithStepHook(func(s string) error { steps = append(steps, s); return nil })); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, step := range steps {
			t.Run(c.name+"/"+step, func(t *testing.T) {
				e, ipamDir := comboEnv(t, c)
				devInfo := e.stateDir + "-devinfo.json"
				args := e.args("c1", "eth0", map[string]any{"runtimeConfig": map[string]any{"CNIDeviceInfoFile": devInfo}})
				_, err := e.addArgs(args, plugin.WithStepHook(func(s string) error {
					if s == step {
						return errInjected
					}
					return nil
				}))
				if !errors.Is(err, errInjected) {
					t.Fatalf("ADD error = %v", err)
				}
				assertVPPClean(t, e.vpp)
				assertNoFiles(t, e.stateDir, e.socketDir)
				if _, err := os.Stat(devInfo); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("device-info file left: %v", err)
				}
				if ipamDir != "" {
					if l := leases(t, ipamDir); len(l) != 0 {
						t.Errorf("IPAM leases left: %v", l)
					}
				}
			})
		}
	}
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
				return errInjected
			}
			return nil
		}))
		if !errors.Is(err, errInjected) {
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
