package vpp_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/ip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// l3Env is a vhost-user l3 env with host-local on 10.77.0.0/24.
func l3Env(t *testing.T) *env {
	e, _ := comboEnv(t, combos[2])
	return e
}

func gatewayOf(t *testing.T, v *fakevpp.VPP) fakevpp.Iface {
	t.Helper()
	for _, i := range v.Interfaces() {
		if i.Tag == vpp.GatewayTag(netName) {
			return i
		}
	}
	t.Fatalf("no gateway loopback in %+v", v.Interfaces())
	return fakevpp.Iface{}
}

func indexOf(t *testing.T, v *fakevpp.VPP, containerID string) uint32 {
	t.Helper()
	for _, i := range v.Interfaces() {
		if i.Tag == vpp.Tag(netName, containerID, "eth0") {
			return i.Index
		}
	}
	t.Fatalf("no interface of %s in %+v", containerID, v.Interfaces())
	return 0
}

// TestL3SharedSubnet: attachments on one subnet share the gateway
// loopback; DEL of one leaves the others' routes; a later ADD reuses the
// kept loopback without touching it.
func TestL3SharedSubnet(t *testing.T) {
	e := l3Env(t)
	for _, id := range []string{"c1", "c2", "c3"} {
		e.mustAdd(id)
	}
	if n := len(e.vpp.Routes()); n != 3 {
		t.Fatalf("%d routes, want 3: %+v", n, e.vpp.Routes())
	}
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c3"), "10.77.0.4")
	if err := e.del("c2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.vpp.Routes() {
		if r.Prefix == "10.77.0.3/32" {
			t.Errorf("route of c2 left: %+v", r)
		}
	}
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c1"), "10.77.0.2")
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c3"), "10.77.0.4")
	for _, id := range []string{"c1", "c3"} {
		if err := e.del(id); err != nil {
			t.Fatal(err)
		}
	}
	assertVPPCleanButGateway(t, e.vpp)
	loop := gatewayOf(t, e.vpp)

	e.vpp.ResetCalls()
	res := e.mustAdd("c4")
	want := []string{"create_vhost_user_if_v2", "sw_interface_set_mtu", "sw_interface_dump", "ip_address_dump",
		"sw_interface_set_unnumbered", "ip_route_add_del", "sw_interface_set_flags"}
	if got := e.vpp.Names(); !slices.Equal(got, want) {
		t.Errorf("ADD on the kept loopback\n got %v\nwant %v", got, want)
	}
	if again := gatewayOf(t, e.vpp); again.Index != loop.Index {
		t.Errorf("gateway loopback %d, was %d", again.Index, loop.Index)
	}
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c4"), res.IPs[0].Address.IP.String())
}

// TestL3GatewayLock: an ADD that finds no gateway loopback while another
// ADD is creating it waits for the network lock, then uses that loopback
// (without the lock it would find the half-made loopback and one of the
// two would add the gateway twice: "Address in use").
func TestL3GatewayLock(t *testing.T) {
	e := l3Env(t)
	inside := make(chan struct{})
	var wg sync.WaitGroup
	var errA error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errA = e.add("c1", plugin.WithStepHook(func(s string) error {
			if s == "gateway" {
				close(inside)
				time.Sleep(300 * time.Millisecond)
			}
			return nil
		}))
	}()
	<-inside
	_, errB := e.add("c2")
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("ADDs: %v, %v", errA, errB)
	}
	if n := len(msgsOf[*interfaces.CreateLoopback](e.vpp.Calls(), "create_loopback")); n != 1 {
		t.Errorf("%d create_loopback, want 1", n)
	}
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c1"), "10.77.0.2")
	checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c2"), "10.77.0.3")
}

// TestRollbackKeepsGateway: a failed ADD deletes the gateway loopback it
// created only when no interface uses it, and on a loopback it found
// removes only the gateway address it added.
func TestRollbackKeepsGateway(t *testing.T) {
	t.Run("used meanwhile", func(t *testing.T) {
		e := l3Env(t)
		_, err := e.add("c1", plugin.WithStepHook(func(s string) error {
			if s == "admin-up" {
				e.mustAdd("c2") // attaches to the loopback c1 created
				return testutil.ErrInjected
			}
			return nil
		}))
		if !errors.Is(err, testutil.ErrInjected) {
			t.Fatalf("ADD error = %v", err)
		}
		if slices.Contains(e.vpp.Names(), "delete_loopback") {
			t.Error("rollback deleted the loopback c2 uses")
		}
		if n := len(e.vpp.Routes()); n != 1 {
			t.Errorf("routes %+v, want c2's", e.vpp.Routes())
		}
		checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c2"), "10.77.0.3")
		if err := e.del("c2"); err != nil {
			t.Fatal(err)
		}
		assertVPPCleanButGateway(t, e.vpp)
	})
	t.Run("found, new gateway", func(t *testing.T) {
		e := l3Env(t)
		e.mustAdd("c0")
		if err := e.del("c0"); err != nil {
			t.Fatal(err)
		}
		e.vpp.ResetCalls()
		other := map[string]any{"ipam": map[string]any{
			"type": "host-local", "dataDir": t.TempDir(),
			"ranges": []any{[]any{map[string]any{"subnet": "10.79.0.0/24"}}},
		}}
		e.vpp.FailNext("sw_interface_set_flags", int32(api.UNSPECIFIED))
		if _, err := e.addArgs(e.args("c1", "eth0", other)); err == nil {
			t.Fatal("ADD succeeded")
		}
		want := []string{"create_vhost_user_if_v2", "sw_interface_set_mtu", "sw_interface_add_del_address",
			"sw_interface_set_unnumbered", "ip_route_add_del", "sw_interface_set_flags",
			"ip_route_add_del", "sw_interface_set_unnumbered", "sw_interface_add_del_address", "delete_vhost_user_if"}
		if got := withoutDumps(e.vpp.Names()); !slices.Equal(got, want) {
			t.Errorf("requests\n got %v\nwant %v", got, want)
		}
		addrs := msgsOf[*interfaces.SwInterfaceAddDelAddress](e.vpp.Calls(), "sw_interface_add_del_address")
		if len(addrs) != 2 || addrs[1].IsAdd || addrs[1].Prefix.String() != "10.79.0.1/24" {
			t.Errorf("address requests %+v", addrs)
		}
		assertVPPCleanButGateway(t, e.vpp)
		if loop := gatewayOf(t, e.vpp); !slices.Equal(loop.Addrs, []string{"10.77.0.1/24"}) {
			t.Errorf("gateway loopback addresses %v, want the first network's only", loop.Addrs)
		}
	})
}

// TestL3WithoutRecord: when the record is lost, DEL and GC find the host
// routes via the tagged interface by dumping the routes, and remove only
// those; the other attachment and the gateway loopback stay.
func TestL3WithoutRecord(t *testing.T) {
	for _, cleaner := range []string{"DEL", "GC"} {
		t.Run(cleaner, func(t *testing.T) {
			e := l3Env(t)
			e.mustAdd("c-valid")
			e.mustAdd("c-lost")
			lost := indexOf(t, e.vpp, "c-lost")
			if err := os.RemoveAll(filepath.Join(e.stateDir, "c-lost")); err != nil {
				t.Fatal(err)
			}
			e.vpp.ResetCalls()
			var err error
			if cleaner == "DEL" {
				err = e.del("c-lost")
			} else {
				err = e.plugin(nil).GC(e.args("", "", map[string]any{
					"cni.dev/valid-attachments": []types.GCAttachment{{ContainerID: "c-valid", IfName: "eth0"}},
				}))
			}
			if err != nil {
				t.Fatalf("%s: %v", cleaner, err)
			}
			if !slices.Contains(e.vpp.Names(), "ip_route_dump") {
				t.Error("routes not dumped")
			}
			checkL3Teardown(t, e.vpp.Calls(), lost, "10.77.0.3")
			if n := len(msgsOf[*ip.IPRouteAddDel](e.vpp.Calls(), "ip_route_add_del")); n != 1 {
				t.Errorf("%d route requests, want 1", n)
			}
			if n := len(e.vpp.Interfaces()); n != 3 {
				t.Errorf("interfaces %+v, want local0, c-valid's, the loopback", e.vpp.Interfaces())
			}
			checkL3Model(t, e.vpp, indexOf(t, e.vpp, "c-valid"), "10.77.0.2")
			if n := len(e.vpp.Routes()); n != 1 {
				t.Errorf("routes %+v", e.vpp.Routes())
			}
		})
	}
}

// TestCheckL3: CHECK passes after ADD and fails once the interface no
// longer borrows the gateway loopback's addresses.
func TestCheckL3(t *testing.T) {
	e := l3Env(t)
	res := e.mustAdd("c1")
	check := func() error {
		return e.plugin(nil).Check(e.args("c1", "eth0", map[string]any{"prevResult": res}))
	}
	if err := check(); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	e.vpp.RemoveInterface(gatewayOf(t, e.vpp).Index)
	if err := check(); err == nil || !strings.Contains(err.Error(), "not unnumbered") {
		t.Fatalf("CHECK without the gateway loopback: %v", err)
	}
}
