package fakevpp_test

import (
	"errors"
	"net"
	"slices"
	"testing"

	"go.fd.io/govpp/api"

	"github.com/vmcni/vmcni/vpp/fakevpp"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

func prefix(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

// TestL3Model drives the l3 messages through the socket: loopback names
// and default MACs, the address-in-use rule, unnumbered interfaces and
// their dump, routes (replace, multipath delete of one path, deleting
// what is missing) and what deleting an interface takes with it.
func TestL3Model(t *testing.T) {
	v := fakevpp.New()
	c := dial(t, serve(t, v), vppapi.FeatureVhostUser, vppapi.FeatureL3)
	defer c.Close()

	loop, err := c.CreateLoopback(nil)
	if err != nil {
		t.Fatal(err)
	}
	gwMAC := net.HardwareAddr{0x02, 0xfe, 1, 2, 3, 4}
	loop1, err := c.CreateLoopback(gwMAC)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := c.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 3 || ifs[1].Name != "loop0" || ifs[1].MAC.String() != "de:ad:00:00:00:00" ||
		ifs[2].Name != "loop1" || ifs[2].MAC.String() != gwMAC.String() {
		t.Fatalf("interfaces = %+v", ifs)
	}
	a, err := c.CreateVhostUser(vppapi.VhostUser{Socket: "/run/x/a.sock"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateVhostUser(vppapi.VhostUser{Socket: "/run/x/b.sock"})
	if err != nil {
		t.Fatal(err)
	}

	// Addresses: one connected prefix per table.
	if err := c.AddAddress(loop, prefix(t, "10.77.0.1/24")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.77.0.1/24", "10.77.0.9/16", "10.77.0.128/25"} {
		if err := c.AddAddress(a, prefix(t, p)); !errors.Is(err, api.ADDRESS_IN_USE) {
			t.Errorf("add %s on another interface: %v, want address in use", p, err)
		}
	}
	if err := c.AddAddress(loop, prefix(t, "10.77.0.1/24")); !errors.Is(err, api.ADDRESS_IN_USE) {
		t.Errorf("add the same address again: %v", err)
	}
	if err := c.AddAddress(loop, prefix(t, "10.77.0.254/24")); err != nil {
		t.Errorf("second address of the subnet on the same interface: %v", err)
	}
	if err := c.AddAddress(loop, prefix(t, "fd00::1/64")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Addresses(loop, false); err != nil || len(got) != 2 || got[0].String() != "10.77.0.1/24" {
		t.Errorf("IPv4 addresses = %v, %v", got, err)
	}
	if got, err := c.Addresses(loop, true); err != nil || len(got) != 1 || got[0].String() != "fd00::1/64" {
		t.Errorf("IPv6 addresses = %v, %v", got, err)
	}
	if err := c.DeleteAddress(loop, prefix(t, "10.77.0.254/24")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAddress(loop, prefix(t, "10.77.0.254/24")); !errors.Is(err, api.ADDRESS_NOT_FOUND_FOR_INTERFACE) {
		t.Errorf("delete a missing address: %v", err)
	}

	// Unnumbered: both borrow loop's addresses; the source must exist.
	if err := c.SetUnnumbered(a, 99); !errors.Is(err, api.INVALID_SW_IF_INDEX_2) {
		t.Errorf("unnumbered to a missing source: %v", err)
	}
	if err := c.SetUnnumbered(99, loop); !errors.Is(err, api.INVALID_SW_IF_INDEX) {
		t.Errorf("missing interface unnumbered: %v", err)
	}
	for _, i := range []uint32{a, b} {
		if err := c.SetUnnumbered(i, loop); err != nil {
			t.Fatal(err)
		}
	}
	if un, err := c.Unnumbered(); err != nil || len(un) != 2 || un[a] != loop || un[b] != loop {
		t.Errorf("unnumbered = %v, %v", un, err)
	}

	// Routes.
	ra, rb := vppapi.HostRoute(a, net.ParseIP("10.77.0.2")), vppapi.HostRoute(b, net.ParseIP("10.77.0.3"))
	r6 := vppapi.HostRoute(b, net.ParseIP("fd00::3"))
	for _, r := range []vppapi.Route{ra, rb, r6} {
		if err := c.AddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AddRoute(vppapi.HostRoute(99, net.ParseIP("10.77.0.9"))); !errors.Is(err, api.INVALID_SW_IF_INDEX) {
		t.Errorf("route via a missing interface: %v", err)
	}
	if rs, err := c.Routes(false); err != nil || len(rs) != 2 || rs[0].Via != a || rs[0].NextHop.String() != "10.77.0.2" ||
		rs[0].Prefix.String() != "10.77.0.2/32" {
		t.Errorf("IPv4 routes = %+v, %v", rs, err)
	}
	if rs, err := c.Routes(true); err != nil || len(rs) != 1 || rs[0].Prefix.String() != "fd00::3/128" || rs[0].Via != b {
		t.Errorf("IPv6 routes = %+v, %v", rs, err)
	}
	// A path via another interface is not ra's: deleting it leaves ra.
	if err := c.DeleteRoutePath(vppapi.HostRoute(b, net.ParseIP("10.77.0.2"))); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRoutePath(ra); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRoutePath(ra); err != nil {
		t.Errorf("delete a missing route: %v", err)
	}
	if rs := v.Routes(); len(rs) != 2 || slices.ContainsFunc(rs, func(r fakevpp.Route) bool { return r.Prefix == "10.77.0.2/32" }) {
		t.Errorf("routes = %+v", rs)
	}
	if err := c.UnsetUnnumbered(a, loop); err != nil {
		t.Fatal(err)
	}

	// Deleting b takes its routes and unnumbered setting; deleting the
	// loopback frees loop0 for the next one.
	if err := c.DeleteLoopback(b); !errors.Is(err, api.INVALID_SW_IF_INDEX) {
		t.Errorf("delete_loopback of a vhost-user interface: %v", err)
	}
	if err := c.DeleteVhostUser(b); err != nil {
		t.Fatal(err)
	}
	if rs := v.Routes(); len(rs) != 0 {
		t.Errorf("routes via a deleted interface: %+v", rs)
	}
	if un, err := c.Unnumbered(); err != nil || len(un) != 0 {
		t.Errorf("unnumbered = %v, %v", un, err)
	}
	for _, i := range []uint32{loop, loop1} {
		if err := c.DeleteLoopback(i); err != nil {
			t.Fatal(err)
		}
	}
	if again, err := c.CreateLoopback(nil); err != nil || v.Interfaces()[2].Name != "loop0" {
		t.Errorf("loopback after deletes: %d %v, %+v", again, err, v.Interfaces())
	}
	if u := v.Unknown(); len(u) != 0 {
		t.Errorf("unknown requests: %v", u)
	}
}
