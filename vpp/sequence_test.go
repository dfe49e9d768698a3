package vpp_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// combo is one interface × network × role combination.
type combo struct {
	name string
	conf map[string]any
	l3   bool
	// want is ADD's request sequence on an empty VPP.
	want []string
	// check verifies key fields of the requests.
	check func(t *testing.T, e *env, calls []fakevpp.Call)
}

func msgOf[T any](t *testing.T, calls []fakevpp.Call, name string) T {
	t.Helper()
	for _, c := range calls {
		if c.Name == name {
			return c.Msg.(T)
		}
	}
	t.Fatalf("no %s in %v", name, calls)
	var zero T
	return zero
}

// msgsOf returns every request named name.
func msgsOf[T any](calls []fakevpp.Call, name string) []T {
	var out []T
	for _, c := range calls {
		if c.Name == name {
			out = append(out, c.Msg.(T))
		}
	}
	return out
}

func checkCommon(t *testing.T, e *env, calls []fakevpp.Call, tag string) {
	mtu := msgOf[*interfaces.SwInterfaceSetMtu](t, calls, "sw_interface_set_mtu")
	if !slices.Equal(mtu.Mtu, []uint32{1400, 1400, 1400, 1400}) || mtu.SwIfIndex != 1 {
		t.Errorf("set_mtu = %+v", mtu)
	}
	all := msgsOf[*interfaces.SwInterfaceSetFlags](calls, "sw_interface_set_flags")
	flags := all[len(all)-1] // the attachment's, last (l3: the gateway loopback's first)
	if flags.Flags != interface_types.IF_STATUS_API_FLAG_ADMIN_UP || flags.SwIfIndex != 1 {
		t.Errorf("set_flags = %+v", flags)
	}
	if want := vpp.Tag(netName, "c1", "eth0"); tag != want || len(tag) > 63 {
		t.Errorf("tag %q, want %q (<= 63 bytes)", tag, want)
	}
}

func checkL2(t *testing.T, calls []fakevpp.Call) {
	bd := msgOf[*l2.BridgeDomainAddDelV2](t, calls, "bridge_domain_add_del_v2")
	if !bd.IsAdd || bd.BdID != 10 || !bd.Learn || !bd.Forward || !bd.Flood {
		t.Errorf("bridge_domain_add_del_v2 = %+v", bd)
	}
	br := msgOf[*l2.SwInterfaceSetL2Bridge](t, calls, "sw_interface_set_l2_bridge")
	if br.RxSwIfIndex != 1 || br.BdID != 10 || !br.Enable || br.PortType != l2.L2_API_PORT_TYPE_NORMAL {
		t.Errorf("set_l2_bridge = %+v", br)
	}
}

// checkL3: the gateway loopback (index 2, after the attachment's 1) is
// created with the network's MAC, tagged, set up and given the gateway
// with the subnet's length; the attachment interface borrows it and gets
// the host route to the guest.
func checkL3(t *testing.T, calls []fakevpp.Call) {
	loop := msgOf[*interfaces.CreateLoopback](t, calls, "create_loopback")
	if loop.MacAddress.String() != vpp.GatewayMAC(netName).String() {
		t.Errorf("create_loopback = %+v, want MAC %s", loop, vpp.GatewayMAC(netName))
	}
	tags := msgsOf[*interfaces.SwInterfaceTagAddDel](calls, "sw_interface_tag_add_del")
	if tag := tags[len(tags)-1]; !tag.IsAdd || tag.SwIfIndex != 2 || tag.Tag != vpp.GatewayTag(netName) {
		t.Errorf("loopback tag_add_del = %+v", tag)
	}
	if up := msgOf[*interfaces.SwInterfaceSetFlags](t, calls, "sw_interface_set_flags"); up.SwIfIndex != 2 ||
		up.Flags != interface_types.IF_STATUS_API_FLAG_ADMIN_UP {
		t.Errorf("loopback set_flags = %+v", up)
	}
	addr := msgOf[*interfaces.SwInterfaceAddDelAddress](t, calls, "sw_interface_add_del_address")
	if !addr.IsAdd || addr.SwIfIndex != 2 || addr.Prefix.String() != "10.77.0.1/24" {
		t.Errorf("add_del_address = %+v (%s), want the gateway 10.77.0.1/24 on the loopback", addr, addr.Prefix)
	}
	un := msgOf[*interfaces.SwInterfaceSetUnnumbered](t, calls, "sw_interface_set_unnumbered")
	if !un.IsAdd || un.SwIfIndex != 2 || un.UnnumberedSwIfIndex != 1 {
		t.Errorf("set_unnumbered = %+v, want 1 borrowing from 2", un)
	}
	r := msgOf[*ip.IPRouteAddDel](t, calls, "ip_route_add_del")
	if !r.IsAdd || r.IsMultipath || r.Route.TableID != 0 || r.Route.Prefix.String() != "10.77.0.2/32" || len(r.Route.Paths) != 1 {
		t.Fatalf("ip_route_add_del = %+v", r)
	}
	if p := r.Route.Paths[0]; p.SwIfIndex != 1 || p.Proto != fib_types.FIB_API_PATH_NH_PROTO_IP4 ||
		p.Nh.Address.GetIP4().String() != "10.77.0.2" || p.Type != fib_types.FIB_API_PATH_TYPE_NORMAL {
		t.Errorf("route path = %+v", p)
	}
}

func vhostCheck(vppServer, l3 bool) func(t *testing.T, e *env, calls []fakevpp.Call) {
	return func(t *testing.T, e *env, calls []fakevpp.Call) {
		c := msgOf[*vhost_user.CreateVhostUserIfV2](t, calls, "create_vhost_user_if_v2")
		if c.IsServer != vppServer || c.SockFilename != e.socketPath("c1", "vhu.sock") {
			t.Errorf("create_vhost_user_if_v2 = %+v", c)
		}
		if !c.UseCustomMac || c.MacAddress.String() != "02:00:00:00:00:aa" {
			t.Errorf("vppMac not applied at create: %+v", c)
		}
		checkCommon(t, e, calls, c.Tag)
		if l3 {
			checkL3(t, calls)
		} else {
			checkL2(t, calls)
		}
	}
}

func memifCheck(l3 bool) func(t *testing.T, e *env, calls []fakevpp.Call) {
	return func(t *testing.T, e *env, calls []fakevpp.Call) {
		s := msgOf[*memif.MemifSocketFilenameAddDelV2](t, calls, "memif_socket_filename_add_del_v2")
		if !s.IsAdd || s.SocketID != ^uint32(0) || s.SocketFilename != e.socketPath("c1", "memif.sock") {
			t.Errorf("memif_socket_filename_add_del_v2 = %+v", s)
		}
		c := msgOf[*memif.MemifCreateV2](t, calls, "memif_create_v2")
		wantMode := memif.MEMIF_MODE_API_ETHERNET
		if l3 {
			wantMode = memif.MEMIF_MODE_API_IP
		}
		if c.Role != memif.MEMIF_ROLE_API_MASTER || c.Mode != wantMode || c.SocketID != 1 || c.ID != 7 ||
			c.RxQueues != 2 || c.TxQueues != 3 || c.RingSize != 2048 || c.BufferSize != 4096 ||
			c.HwAddr.String() != "02:00:00:00:00:aa" {
			t.Errorf("memif_create_v2 = %+v", c)
		}
		tag := msgOf[*interfaces.SwInterfaceTagAddDel](t, calls, "sw_interface_tag_add_del")
		if !tag.IsAdd || tag.SwIfIndex != 1 {
			t.Errorf("tag_add_del = %+v", tag)
		}
		checkCommon(t, e, calls, tag.Tag)
		if l3 {
			checkL3(t, calls)
		} else {
			checkL2(t, calls)
		}
	}
}

var memifConf = map[string]any{"ringSize": 2048, "bufferSize": 4096, "id": 7, "rxQueues": 2, "txQueues": 3}

func memifConfWith(mode string) map[string]any {
	m := map[string]any{"mode": mode}
	for k, v := range memifConf {
		m[k] = v
	}
	return m
}

// l3Sequence follows the MTU in l3 on an empty VPP: under the network
// lock, find (dump) or create the gateway loopback, tag it, set it up, give
// it the gateway; the attachment interface borrows its addresses; then the
// host route and admin up.
var l3Sequence = []string{
	"sw_interface_dump", "create_loopback", "sw_interface_tag_add_del", "sw_interface_set_flags",
	"sw_interface_add_del_address", "sw_interface_set_unnumbered", "ip_route_add_del", "sw_interface_set_flags",
}

var combos = []combo{
	{
		name: "vhost-user/vmm-server/l2", conf: map[string]any{"mode": "server"},
		want: []string{"bridge_domain_dump", "bridge_domain_add_del_v2", "create_vhost_user_if_v2",
			"sw_interface_set_mtu", "sw_interface_set_l2_bridge", "sw_interface_set_flags"},
		check: vhostCheck(false, false),
	},
	{
		name: "vhost-user/vmm-client/l2", conf: map[string]any{"mode": "client"},
		want: []string{"bridge_domain_dump", "bridge_domain_add_del_v2", "create_vhost_user_if_v2",
			"sw_interface_set_mtu", "sw_interface_set_l2_bridge", "sw_interface_set_flags"},
		check: vhostCheck(true, false),
	},
	{
		name: "vhost-user/vmm-server/l3", conf: map[string]any{"mode": "server", "network": "l3"}, l3: true,
		want:  append([]string{"create_vhost_user_if_v2", "sw_interface_set_mtu"}, l3Sequence...),
		check: vhostCheck(false, true),
	},
	{
		name: "vhost-user/vmm-client/l3", conf: map[string]any{"mode": "client", "network": "l3"}, l3: true,
		want:  append([]string{"create_vhost_user_if_v2", "sw_interface_set_mtu"}, l3Sequence...),
		check: vhostCheck(true, true),
	},
	{
		name: "memif/l2", conf: map[string]any{"interface": "memif", "memif": memifConfWith("ethernet")},
		want: []string{"bridge_domain_dump", "bridge_domain_add_del_v2", "memif_socket_filename_add_del_v2",
			"memif_create_v2", "sw_interface_tag_add_del", "sw_interface_set_mtu", "sw_interface_set_l2_bridge",
			"sw_interface_set_flags"},
		check: memifCheck(false),
	},
	{
		name: "memif/l3", conf: map[string]any{"interface": "memif", "network": "l3", "memif": memifConfWith("ip")}, l3: true,
		want: append([]string{"memif_socket_filename_add_del_v2", "memif_create_v2", "sw_interface_tag_add_del",
			"sw_interface_set_mtu"}, l3Sequence...),
		check: memifCheck(true),
	},
}

// comboEnv is an env for c with mtu 1400 and a VPP-side MAC.
func comboEnv(t *testing.T, c combo) (*env, string) {
	conf := map[string]any{"mtu": 1400, "vppMac": "02:00:00:00:00:aa", "mac": "02:00:00:00:00:01"}
	for k, v := range c.conf {
		conf[k] = v
	}
	e := newEnv(t, conf)
	var ipamDir string
	if c.l3 {
		ipamDir = withHostLocal(t, e)
	}
	return e, ipamDir
}

// TestAddSequences checks ADD's exact request sequence and key fields for
// every combination, the VPP state it leaves, the result, the hint and the
// device-info file.
func TestAddSequences(t *testing.T) {
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			e, _ := comboEnv(t, c)
			devInfo := e.stateDir + "-devinfo.json"
			res, err := e.addArgs(e.args("c1", "eth0", map[string]any{"runtimeConfig": map[string]any{"CNIDeviceInfoFile": devInfo}}))
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if got := e.vpp.Names(); !slices.Equal(got, c.want) {
				t.Fatalf("requests\n got %v\nwant %v", got, c.want)
			}
			c.check(t, e, e.vpp.Calls())

			ifs := e.vpp.Interfaces()
			n := 2
			if c.l3 {
				n = 3
			}
			if len(ifs) != n || !ifs[1].AdminUp || ifs[1].MTU != 1400 || ifs[1].Tag != vpp.Tag(netName, "c1", "eth0") {
				t.Errorf("VPP interfaces = %+v", ifs)
			}
			if c.l3 {
				checkL3Model(t, e.vpp, 1, "10.77.0.2")
			}
			h, err := hint.Read(e.stateDir, "c1", "eth0")
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, e, c, res, h, devInfo)
		})
	}
}

// checkL3Model: the gateway loopback is up with 10.77.0.1/24 and the
// attachment interface index borrows it, with a host route to guest.
func checkL3Model(t *testing.T, v *fakevpp.VPP, index uint32, guest string) {
	t.Helper()
	var loop, att *fakevpp.Iface
	for _, i := range v.Interfaces() {
		switch {
		case i.Tag == vpp.GatewayTag(netName):
			loop = &i
		case i.Index == index:
			att = &i
		}
	}
	if loop == nil || !loop.Loopback || !loop.AdminUp || !slices.Equal(loop.Addrs, []string{"10.77.0.1/24"}) ||
		!strings.HasPrefix(loop.Name, "loop") {
		t.Fatalf("gateway loopback = %+v", loop)
	}
	if att == nil || !att.Unnumbered || att.UnnumberedSource != loop.Index || len(att.Addrs) != 0 {
		t.Errorf("attachment interface = %+v, want unnumbered to %d", att, loop.Index)
	}
	want := fakevpp.Route{Prefix: guest + "/32", Paths: []fakevpp.RoutePath{{SwIfIndex: index, NextHop: guest}}}
	if !slices.ContainsFunc(v.Routes(), func(r fakevpp.Route) bool {
		return r.Prefix == want.Prefix && slices.Equal(r.Paths, want.Paths)
	}) {
		t.Errorf("routes %+v, want %+v", v.Routes(), want)
	}
}

func checkReport(t *testing.T, e *env, c combo, res *current.Result, h *hint.Hint, devInfo string) {
	t.Helper()
	if len(res.Interfaces) != 1 {
		t.Fatalf("result interfaces = %+v, want only the pseudo-interface", res.Interfaces)
	}
	pseudo := res.Interfaces[0]
	memifKind := c.conf["interface"] == "memif"
	wantSock := e.socketPath("c1", "vhu.sock")
	if memifKind {
		wantSock = e.socketPath("c1", "memif.sock")
	}
	if pseudo.SocketPath != wantSock || pseudo.Sandbox != "c1" || pseudo.Mac != "02:00:00:00:00:01" || pseudo.Mtu != 1400 {
		t.Errorf("pseudo-interface = %+v", pseudo)
	}
	if c.l3 {
		if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.77.0.2/24" || *res.IPs[0].Interface != 0 {
			t.Errorf("result IPs = %+v", res.IPs)
		}
		if len(h.Guest.IPs) != 1 || h.Guest.IPs[0].Gateway != "10.77.0.1" {
			t.Errorf("hint guest IPs = %+v", h.Guest.IPs)
		}
	} else if len(res.IPs) != 0 {
		t.Errorf("l2 without ipam: IPs = %+v", res.IPs)
	}
	if h.Guest.MAC != "02:00:00:00:00:01" || h.Guest.MTU != 1400 {
		t.Errorf("hint guest = %+v", h.Guest)
	}
	var info hint.DeviceInfo
	data, err := os.ReadFile(devInfo)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	if memifKind {
		if h.Kind != hint.KindMemif || h.Memif.Role != "client" || h.Memif.ID != 7 || h.Memif.RingSize != 2048 || h.Memif.Socket != wantSock {
			t.Errorf("hint memif = %+v", h.Memif)
		}
		if info.Type != "memif" || info.Memif.Path != wantSock || info.Memif.Role != "client" {
			t.Errorf("device-info = %+v", info)
		}
		return
	}
	if h.Kind != hint.KindVhostUser || h.VhostUser.Mode != c.conf["mode"] || h.VhostUser.Socket != wantSock {
		t.Errorf("hint vhostUser = %+v", h.VhostUser)
	}
	if info.Type != "vhost-user" || info.VhostUser.Path != wantSock || info.VhostUser.Mode != c.conf["mode"] {
		t.Errorf("device-info = %+v", info)
	}
}
