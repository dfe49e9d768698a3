package driver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/cnm-adapter/api"
	"github.com/vmcni/vmcni/cnm-adapter/state"
)

const netID = "0123456789abcdef0123456789abcdef"

func TestParseNetworkOptions(t *testing.T) {
	d := New(nil, WithNamePrefix("vmct"), WithDefaultNetworkOptions(map[string]string{"mode": "bridge"}))
	cases := []struct {
		name   string
		given  map[string]string
		want   map[string]string
		errHas string
	}{
		{"defaults", nil, map[string]string{"plugin": "vm-bridge", "mode": "bridge", "bridge": "vmct0123456789a", "ipmasq": "true"}, ""},
		{"given beats default", map[string]string{"Mode": "macvtap", "ipmasq": "false", "mtu": "1400"}, map[string]string{"mode": "macvtap", "ipmasq": "false", "mtu": "1400"}, ""},
		{"unknown key", map[string]string{"moed": "x"}, nil, `unknown option(s) ["moed"]`},
		{"bad mode", map[string]string{"mode": "fast"}, nil, `mode "fast"`},
		{"bad mtu", map[string]string{"mtu": "9x"}, nil, `mtu "9x"`},
		{"bad bridge", map[string]string{"bridge": "a/b"}, nil, `bridge: interface name "a/b"`},
		{"other plugin needs conflist", map[string]string{"plugin": "ptp"}, nil, `plugin "ptp" has no generated config`},
		{"relative conflist", map[string]string{"conflist": "x.conflist"}, nil, "must be an absolute path"},
		{"conflist excludes mtu", map[string]string{"conflist": "/x.conflist", "mtu": "1400"}, nil, `option "mtu" does not combine`},
		{"bad ipmasq", map[string]string{"ipmasq": "maybe"}, nil, `ipmasq "maybe"`},
		{"vmdevice defaults to none", nil, map[string]string{"vmdevice": "none"}, ""},
		{"vmdevice tcfilter", map[string]string{"vmdevice": "tcfilter"}, map[string]string{"vmdevice": "tcfilter", "mode": "bridge"}, ""},
		{"vmdevice is case-insensitive", map[string]string{"VMDevice": "MacVTap"}, map[string]string{"vmdevice": "macvtap"}, ""},
		{"vmdevice none", map[string]string{"vmdevice": "none"}, map[string]string{"vmdevice": "none"}, ""},
		{"vmdevice bridge", map[string]string{"vmdevice": "bridge"}, map[string]string{"vmdevice": "bridge"}, ""},
		{"bad vmdevice", map[string]string{"vmdevice": "tap"}, nil, `vmdevice "tap" is not one of none, tcfilter, bridge, macvtap`},
		{"vmdevice combines with conflist", map[string]string{"conflist": "/x.conflist", "vmdevice": "tcfilter"}, map[string]string{"vmdevice": "tcfilter", "conflist": "/x.conflist"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.parseNetworkOptions(netID, tc.given)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestGenericOptions(t *testing.T) {
	got, err := genericOptions(map[string]any{api.GenericOption: map[string]any{"mode": "bridge", "mtu": float64(1400)}})
	if err != nil || got["mode"] != "bridge" || got["mtu"] != "1400" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err = genericOptions(map[string]any{api.GenericOption: "mode=bridge"}); err == nil {
		t.Fatal("a non-object generic option was accepted")
	}
}

func TestRenderConfig(t *testing.T) {
	d := New(nil, WithPluginStateDir("/tmp/vmct-state"))
	n := &state.Network{ID: netID, Bridge: "vmctbr0", Options: map[string]string{"mode": "macvtap", "ipmasq": "false", "mtu": "1400"},
		IPv4: []state.Pool{{Subnet: "10.9.0.0/24", Gateway: "10.9.0.1/24"}}}
	ep := &state.Endpoint{ID: "ep0123456789abcdef", Address: "10.9.0.5/24", MAC: "02:00:00:00:00:05"}
	data, rt, err := d.renderConfig(n, ep)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Name    string
		Plugins []vmBridgeConf
	}
	if err = json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	if c.Name != "cnm-0123456789ab" || p.Mode != "macvtap" || p.Bridge != "vmctbr0" || p.IPMasq || p.MTU != 1400 ||
		p.StateDir != "/tmp/vmct-state" || !p.IsGateway || p.IPAM.Type != "static" ||
		p.IPAM.Addresses[0] != (staticAddress{Address: "10.9.0.5/24", Gateway: "10.9.0.1"}) {
		t.Fatalf("config: %s", data)
	}
	if rt.ContainerID != ep.ID || rt.IfName != "eth0" || rt.CapabilityArgs["mac"] != ep.MAC {
		t.Fatalf("runtime: %+v", rt)
	}
	if _, _, err = d.renderConfig(n, &state.Endpoint{ID: "ep0123456789abcdef"}); err == nil {
		t.Fatal("an endpoint without address was accepted")
	}
	n.Conflist = []byte(`{"cniVersion":"1.1.0","name":"x","plugins":[{"type":"ptp"}]}`)
	data, rt, _ = d.renderConfig(n, ep)
	if string(data) != string(n.Conflist) || rt.CapabilityArgs["ips"].([]string)[0] != "10.9.0.5/24" {
		t.Fatalf("conflist network: %s %+v", data, rt)
	}
}

func TestValidIDAndUnknownRequests(t *testing.T) {
	for _, id := range []string{"", "short", "../../etc/passwd0", strings.Repeat("a", 129)} {
		if validID("EndpointID", id) == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if validID("EndpointID", netID) != nil {
		t.Error("a Docker ID was refused")
	}
}

func TestRenderVMConfig(t *testing.T) {
	d := New(nil, WithPluginStateDir("/tmp/vmct-state"))
	n := &state.Network{ID: netID, Bridge: "vmctbr0", Options: map[string]string{"mode": "tcfilter", "vmdevice": "macvtap", "loglevel": "debug"},
		IPv4: []state.Pool{{Subnet: "10.9.0.0/24", Gateway: "10.9.0.1/24"}}}
	ep := &state.Endpoint{ID: "ep0123456789abcdef", Address: "10.9.0.5/24", MAC: "02:00:00:00:00:05", SandboxKey: "/run/docker/netns/0123456789ab"}

	// The host-side ADD must not use an "eth" name: the chained attachment
	// is keyed (endpoint ID, ethN) in vm-bridge's state dir.
	_, rt, err := d.renderConfig(n, ep)
	if err != nil || rt.IfName != transferIfName {
		t.Fatalf("host-side runtime %+v %v, want IfName %q", rt, err, transferIfName)
	}
	n.Options["vmdevice"] = "none"
	if _, rt, _ = d.renderConfig(n, ep); rt.IfName != "eth0" {
		t.Fatalf("without a VM device the host-side IfName is %q, want eth0", rt.IfName)
	}
	n.Options["vmdevice"] = "macvtap"

	check := func(t *testing.T, data []byte, rt *state.Runtime, wantIPs []string) {
		t.Helper()
		var c struct {
			CNIVersion string
			Name       string
			Plugins    []vmBridgeChained
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		p := c.Plugins[0]
		if c.Name != "cnm-0123456789ab" || p.Type != "vm-bridge" || p.Mode != "macvtap" || p.StateDir != "/tmp/vmct-state" || p.LogLevel != "debug" {
			t.Fatalf("config: %s", data)
		}
		prev := p.PrevResult
		if len(prev.Interfaces) != 1 || prev.Interfaces[0].Name != "eth1" || prev.Interfaces[0].Mac != ep.MAC ||
			prev.Interfaces[0].Sandbox != ep.SandboxKey {
			t.Fatalf("prevResult interfaces: %s", data)
		}
		var got []string
		for _, ip := range prev.IPs {
			if ip.Interface == nil || *ip.Interface != 0 {
				t.Fatalf("prevResult IP not on interface 0: %s", data)
			}
			got = append(got, ip.Address.String()+" via "+ip.Gateway.String())
		}
		if strings.Join(got, ",") != strings.Join(wantIPs, ",") {
			t.Fatalf("prevResult IPs %v, want %v", got, wantIPs)
		}
		if rt.ContainerID != ep.ID || rt.NetNS != ep.SandboxKey || rt.IfName != "eth1" {
			t.Fatalf("runtime: %+v", rt)
		}
	}
	t.Run("from Docker's addresses", func(t *testing.T) {
		data, rt, err := d.renderVMConfig(n, ep, "eth1")
		if err != nil {
			t.Fatal(err)
		}
		check(t, data, rt, []string{"10.9.0.5/24 via 10.9.0.1"})
	})
	t.Run("from the host-side result, deduplicated", func(t *testing.T) {
		ep := *ep
		ep.Result = json.RawMessage(`{"cniVersion":"1.1.0","interfaces":[{"name":"vmctbr0"},{"name":"xfer0","sandbox":"/x"},{"name":"tap_xfer0","sandbox":"x"}],
			"ips":[{"interface":1,"address":"10.9.0.5/24","gateway":"10.9.0.254"},{"interface":2,"address":"10.9.0.5/24","gateway":"10.9.0.254"}],
			"routes":[{"dst":"0.0.0.0/0","gw":"10.9.0.254"}]}`)
		data, rt, err := d.renderVMConfig(n, &ep, "eth1")
		if err != nil {
			t.Fatal(err)
		}
		check(t, data, rt, []string{"10.9.0.5/24 via 10.9.0.254"})
		var c struct{ Plugins []vmBridgeChained }
		_ = json.Unmarshal(data, &c)
		if len(c.Plugins[0].PrevResult.Routes) != 1 {
			t.Fatalf("routes not carried: %s", data)
		}
	})
}
