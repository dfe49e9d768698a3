package vmnet

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/vmcni/vmcni/pkg/hint"
)

func mustCIDR(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, ipnet, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	ipnet.IP = ip
	return *ipnet
}

// podResult is what vm-bridge holds before AppendToResult in standalone
// mode: bridge, host veth, and the pod interface eth0 (index 2) with a
// dual-stack host-local allocation.
func podResult(t *testing.T, podIf string) *current.Result {
	_, v4def, _ := net.ParseCIDR("0.0.0.0/0")
	_, v6def, _ := net.ParseCIDR("::/0")
	return &current.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{
			{Name: "vmbr0", Mac: "aa:bb:cc:00:00:01"},
			{Name: "veth0a1b2c3d", Mac: "aa:bb:cc:00:00:02"},
			{Name: podIf, Mac: "aa:bb:cc:00:00:03", Sandbox: testNetns, Mtu: 1400},
		},
		IPs: []*current.IPConfig{
			{Interface: current.Int(2), Address: mustCIDR(t, "10.22.0.5/24"), Gateway: net.ParseIP("10.22.0.1")},
			{Interface: current.Int(2), Address: mustCIDR(t, "fd00:22::5/64"), Gateway: net.ParseIP("fd00:22::1")},
		},
		Routes: []*types.Route{{Dst: *v4def, GW: net.ParseIP("10.22.0.1")}, {Dst: *v6def}},
		DNS:    types.DNS{Nameservers: []string{"10.22.0.1"}, Search: []string{"svc.example"}},
	}
}

// ipamResult is a bare IPAM result, as the plugins without a pod interface
// (vhost-user, vfio) start from: IPs without an interface.
func ipamResult(t *testing.T) *current.Result {
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	return &current.Result{
		CNIVersion: "1.1.0",
		IPs:        []*current.IPConfig{{Address: mustCIDR(t, "192.168.7.20/24"), Gateway: net.ParseIP("192.168.7.1")}},
		Routes:     []*types.Route{{Dst: *def}},
	}
}

// attach does what vm-bridge's ADD does last: derive the guest section from
// the result, then append the device and pseudo-interfaces.
func attach(t *testing.T, res *current.Result, h *hint.Hint, podIf int) *hint.Hint {
	t.Helper()
	h.Guest = hint.GuestFromResult(res, podIf, h.Guest.MAC, h.Guest.MTU)
	if _, err := hint.AppendToResult(res, h, podIf); err != nil {
		t.Fatalf("AppendToResult: %v", err)
	}
	return h
}

// asLibcni converts res to version the way a runtime sees it: the plugin
// prints it at that version and libcni parses the bytes.
func asLibcni(t *testing.T, res *current.Result, version string) types.Result {
	t.Helper()
	conv, err := res.GetAsVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(conv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := create.CreateFromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type resultCase struct {
	name    string
	version string
	// build returns the result and the hint files present in the state dir.
	build func(t *testing.T) (*current.Result, []*hint.Hint)
	// corrupt, when set, is written as the hint file of ifName "eth9".
	corrupt string
}

func tapCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res := podResult(t, "eth0")
	h := tapHint("eth0", "tap_eth0", 4)
	return res, []*hint.Hint{attach(t, res, h, 2)}
}

func macvtapCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res := podResult(t, "eth1")
	return res, []*hint.Hint{attach(t, res, macvtapHint(), 2)}
}

func vhostUserCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res := ipamResult(t)
	return res, []*hint.Hint{attach(t, res, vhostUserHint("client", 2), -1)}
}

func vfioCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res := ipamResult(t)
	return res, []*hint.Hint{attach(t, res, vfioHint(), -1)}
}

// multiCase is a result with two pseudo-interfaces (a tap on eth0 and an
// address-less vhost-user), plus the hint of another network of the same
// container, which must be ignored.
func multiCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res := podResult(t, "eth0")
	tap := attach(t, res, tapHint("eth0", "tap_eth0", 1), 2)
	// The vhost-user attachment's own address, not yet on an interface.
	res.IPs = append(res.IPs, &current.IPConfig{Address: mustCIDR(t, "fd00:77::10/64")})
	vu := vhostUserHint("server", 1)
	vu.Guest.IPs = []hint.IP{{Address: "fd00:77::10/64"}}
	if _, err := hint.AppendToResult(res, vu, -1); err != nil {
		t.Fatal(err)
	}
	other := tapHint("eth5", "tap_eth5", 1)
	other.Guest.MAC = "2e:7d:1c:22:40:99"
	return res, []*hint.Hint{tap, vu, other}
}

// twinCase has two hint files naming the same device; the MAC decides.
func twinCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res, hs := tapCase(t)
	twin := tapHint("eth7", "tap_eth0", 1)
	twin.Guest.MAC = "2e:7d:1c:22:40:77"
	return res, append(hs, twin)
}

func staleCase(t *testing.T) (*current.Result, []*hint.Hint) {
	res, hs := tapCase(t)
	hs[0].Guest.MAC = "2e:7d:1c:22:40:55" // an older ADD's guest MAC
	return res, hs
}

func withoutHints(build func(t *testing.T) (*current.Result, []*hint.Hint)) func(t *testing.T) (*current.Result, []*hint.Hint) {
	return func(t *testing.T) (*current.Result, []*hint.Hint) {
		res, _ := build(t)
		return res, nil
	}
}

func resultCases() []resultCase {
	return []resultCase{
		{name: "tap-1.1.0-hint", version: "1.1.0", build: tapCase},
		{name: "tap-1.1.0-nohint", version: "1.1.0", build: withoutHints(tapCase)},
		{name: "tap-1.0.0-nohint", version: "1.0.0", build: withoutHints(tapCase)},
		{name: "tap-0.4.0-hint", version: "0.4.0", build: tapCase},
		{name: "tap-0.4.0-nohint", version: "0.4.0", build: withoutHints(tapCase)},
		{name: "macvtap-1.1.0-hint", version: "1.1.0", build: macvtapCase},
		{name: "macvtap-1.1.0-nohint", version: "1.1.0", build: withoutHints(macvtapCase)},
		{name: "vhost-user-1.1.0-hint", version: "1.1.0", build: vhostUserCase},
		{name: "vhost-user-1.1.0-nohint", version: "1.1.0", build: withoutHints(vhostUserCase)},
		{name: "vhost-user-0.4.0-hint", version: "0.4.0", build: vhostUserCase},
		{name: "vhost-user-0.4.0-nohint", version: "0.4.0", build: withoutHints(vhostUserCase)},
		{name: "vfio-1.1.0-nohint", version: "1.1.0", build: withoutHints(vfioCase)},
		{name: "vfio-0.4.0-hint", version: "0.4.0", build: vfioCase},
		{name: "multi-1.1.0-hint", version: "1.1.0", build: multiCase},
		{name: "twin-hints", version: "1.1.0", build: twinCase},
		{name: "stale-hint", version: "1.1.0", build: staleCase},
		{name: "corrupt-hint", version: "1.1.0", build: tapCase, corrupt: `{"hintVersion": "1", "kind": "tap"}`},
		{name: "no-pseudo-interface", version: "1.1.0", build: func(t *testing.T) (*current.Result, []*hint.Hint) {
			return podResult(t, "eth0"), nil
		}},
	}
}

// TestPlanFromResult renders, per case, the result as libcni returns it and
// the plan (or error) into testdata/fromresult/<name>.golden.
func TestPlanFromResult(t *testing.T) {
	for _, tc := range resultCases() {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := t.TempDir()
			res, hints := tc.build(t)
			for _, h := range hints {
				if err := hint.Write(stateDir, h); err != nil {
					t.Fatal(err)
				}
			}
			if tc.corrupt != "" {
				if err := hint.WriteFileAtomic(hint.Path(stateDir, testCID, "eth9"), []byte(tc.corrupt), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A plugin record without a hint (attachment in progress) is skipped.
			if err := os.MkdirAll(hint.AttachmentDir(stateDir, testCID, "eth8"), 0o755); err != nil {
				t.Fatal(err)
			}
			in := asLibcni(t, res, tc.version)
			resJSON, err := json.MarshalIndent(in, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var out string
			p, err := PlanFromResult(in, testCID, stateDir)
			if err != nil {
				out = "error: " + err.Error()
			} else {
				data, err := json.MarshalIndent(p, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				out = string(data) + "\n\n" + p.String()
			}
			out = strings.ReplaceAll(out, stateDir, "$STATEDIR")
			golden(t, "fromresult/"+tc.name, []byte("# result (CNI "+tc.version+")\n"+string(resJSON)+"\n\n# plan\n"+out+"\n"))
		})
	}
}

func TestPlanFromResultArgs(t *testing.T) {
	res, _ := tapCase(t)
	if _, err := PlanFromResult(nil, testCID, t.TempDir()); err == nil {
		t.Error("nil result: no error")
	}
	if _, err := PlanFromResult(res, "../etc", t.TempDir()); err == nil {
		t.Error("bad container ID: no error")
	}
	// An unreadable state dir is an error, a missing one is not.
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := PlanFromResult(res, testCID, missing); err != nil {
		t.Errorf("missing state dir: %v", err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PlanFromResult(res, testCID, notDir); err == nil {
		t.Error("state dir is a file: no error")
	}
	// A result without a version is taken as the current one.
	res.CNIVersion = ""
	if _, err := PlanFromResult(res, testCID, missing); err != nil {
		t.Errorf("unversioned result: %v", err)
	}
}

func TestPlanFromHintsErrors(t *testing.T) {
	dupMAC := tapHint("eth1", "tap_eth1", 1)
	noSection := tapHint("eth0", "tap_eth0", 1)
	noSection.Tap = nil
	tests := []struct {
		name  string
		hints []*hint.Hint
		want  string
	}{
		{"nil", []*hint.Hint{nil}, "hint 0 is nil"},
		{"invalid", []*hint.Hint{noSection}, `hint 0 (container "c1", ifName "eth0"): kind "tap" without its "tap" section`},
		{"duplicate mac", []*hint.Hint{tapHint("eth0", "tap_eth0", 1), dupMAC}, `NIC 1 (tap "tap_eth1", ifName "eth1"): mac "2e:7d:1c:22:40:07" already used by NIC 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanFromHints(tt.hints...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Queues default to 1 and MACs are canonicalised.
	h := tapHint("eth0", "tap_eth0", 0)
	p := mustPlan(t, h)
	if n := p.NICs[0]; n.Queues != 1 || n.MAC != "2e:7d:1c:22:40:07" || n.Netns != testNetns {
		t.Errorf("NIC = queues %d, mac %q, netns %q", n.Queues, n.MAC, n.Netns)
	}
}
