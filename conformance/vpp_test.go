package conformance_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmcni/vmcni/conformance"
	vppplugin "github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

// TestVPP runs the suite on the vm-vpp binary against a VPP stand-in
// (package fakevpp: VPP cannot run here) served on a unix socket, so the
// binary uses its production connector, govpp's socketclient, as with a
// real VPP: vhost-user and memif, on l2 bridge domains and routed (l3, many
// attachments on one subnet through unnumbered interfaces). After the
// suite the stand-in's interfaces, routes and memif sockets are as before
// (the bridge domain or gateway loopback the first ADD creates stays, by
// design).
func TestVPP(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]any
	}{
		{"vhost-user-l2", map[string]any{"mode": "server", "bridgeDomain": 10}},
		{"memif-l2", map[string]any{"interface": "memif", "bridgeDomain": 11}},
		{"memif-l3", map[string]any{"interface": "memif", "network": "l3", "memif": map[string]any{"mode": "ip"}}},
		{"vhost-user-l3", map[string]any{"mode": "client", "network": "l3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			vpp := fakevpp.New()
			apiSocket := filepath.Join(t.TempDir(), "api.sock")
			stop, err := vpp.ServeSocket(apiSocket)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			sockDir, err := os.MkdirTemp("/tmp", "vmct-cvpp") // short: sun_path
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
			conf := merged(map[string]any{"type": "vm-vpp", "apiSocket": apiSocket, "timeout": "5s",
				"stateDir": e.stateDir, "socketDir": sockDir, "mtu": 1400}, c.conf)
			if conf["network"] == "l3" {
				conf["ipam"] = e.ipam()
			}
			network := "vmct-vpp-" + c.name
			ifacesBefore, socketsBefore := vpp.Interfaces(), vpp.MemifSockets()
			rep := e.run(conformance.Config{
				Conflist:   conflist(network, conf),
				WatchDirs:  []string{sockDir},
				ExtraState: func() ([]string, error) { return vppState(vpp, vppplugin.GatewayTag(network)), nil },
				InvalidConfigs: [][]byte{
					invalidConf(conf, map[string]any{"apiSocket": "relative.sock"}),
					invalidConf(conf, map[string]any{"mtu": 10}), invalidConf(conf, map[string]any{"interface": "bogus"}),
				},
			})
			assertPassed(t, rep, append(slices.Clone(protocolChecks), conformance.CheckVMDevice, conformance.CheckVMHint, conformance.CheckErrInvalidConfig,
				conformance.CheckGCValid, conformance.CheckGCLegacyKey)...)
			kept := slices.DeleteFunc(vpp.Interfaces(), func(i fakevpp.Iface) bool { return i.Tag == vppplugin.GatewayTag(network) })
			if !slices.EqualFunc(kept, ifacesBefore, sameIface) {
				t.Errorf("VPP interfaces after the suite (l3's gateway loopback aside): %+v, before %+v", kept, ifacesBefore)
			}
			if r := vpp.Routes(); len(r) > 0 {
				t.Errorf("VPP routes left after the suite: %+v", r)
			}
			if got := vpp.MemifSockets(); len(got) != len(socketsBefore) {
				t.Errorf("VPP memif sockets after the suite: %v, before %v", got, socketsBefore)
			}
			if u := vpp.Unknown(); len(u) > 0 {
				t.Errorf("requests the VPP stand-in does not model: %v", u)
			}
		})
	}
}

// vppState is what vm-vpp programs in VPP, for the suite's hygiene
// comparisons: interfaces (the network's gateway loopback aside: shared,
// kept once created), routes, bridge domain members and memif socket
// registrations (an empty bridge domain aside, for the same reason).
func vppState(v *fakevpp.VPP, gatewayTag string) []string {
	var lines []string
	for _, i := range v.Interfaces() {
		if i.Tag != gatewayTag {
			lines = append(lines, fmt.Sprintf("interface %d %s tag=%q up=%v unnumbered=%v", i.Index, i.Name, i.Tag, i.AdminUp, i.Unnumbered))
		}
	}
	for _, r := range v.Routes() {
		lines = append(lines, fmt.Sprintf("route %+v", r))
	}
	for id, bd := range v.BridgeDomains() {
		for _, m := range bd.Members {
			lines = append(lines, fmt.Sprintf("bridge-domain %d member %d", id, m))
		}
	}
	for id, path := range v.MemifSockets() {
		lines = append(lines, fmt.Sprintf("memif-socket %d %s", id, path))
	}
	return lines
}

func sameIface(a, b fakevpp.Iface) bool {
	return a.Index == b.Index && a.Name == b.Name && a.Tag == b.Tag
}
