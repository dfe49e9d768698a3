package bridgetap_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	"github.com/vishvananda/netlink"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/masq"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// TestDualStackMultiqueueOwnerMasq: IPv4 + IPv6 addresses, DNS, a
// 4-queue tap with owner and group, masquerade; all visible in the netns,
// the hint and nftables, and all gone after DEL.
func TestDualStackMultiqueueOwnerMasq(t *testing.T) {
	e := newEnv(t)
	conf := e.vmBridge(bridgetap.ModeTCFilter, map[string]any{
		"queues": 4, "tapOwner": 1000, "tapGroup": 1000, "ipMasq": true, "mtu": 1400,
		"dns": map[string]any{"nameservers": []string{"10.0.0.53"}, "search": []string{"pod.local"}},
	})
	ipamConf := e.ipam("fd00:" + strings.Split(e.subnet, ".")[2] + "::/64")
	ipamConf["routes"] = []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}}
	conf["ipam"] = ipamConf
	cni := e.cni("1.1.0", conf)
	ns := testutil.NewNS(t)
	rt := testutil.Runtime(testutil.UniqueName("ds"), ns.Path, "eth0")
	res, err := cni.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	h, err := hint.Read(e.stateDir, rt.ContainerID, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	var v4, v6 int
	for _, ip := range h.Guest.IPs {
		if strings.Contains(ip.Address, ":") {
			v6++
		} else {
			v4++
		}
		if ip.Gateway == "" {
			t.Fatalf("guest ip %s without gateway", ip.Address)
		}
	}
	if v4 != 1 || v6 != 1 || len(h.Guest.Routes) != 2 || h.Guest.DNS == nil || h.Guest.DNS.Nameservers[0] != "10.0.0.53" || h.Guest.MTU != 1400 {
		t.Fatalf("guest section: %+v", h.Guest)
	}
	if len(res.IPs) != 4 {
		t.Fatalf("want 2 IPs for eth0 and 2 for the pseudo-interface, got %d", len(res.IPs))
	}
	tap, ok := linkIn(t, ns.Path, h.Tap.Name).(*netlink.Tuntap)
	if !ok {
		t.Fatal("not a tap")
	}
	if tap.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || tap.Flags&netlink.TUNTAP_VNET_HDR == 0 || tap.Owner != 1000 || tap.Group != 1000 || tap.MTU != 1400 {
		t.Fatalf("tap: flags=%v owner=%d group=%d mtu=%d", tap.Flags, tap.Owner, tap.Group, tap.MTU)
	}
	if h.Tap.Queues != 4 {
		t.Fatalf("hint queues %d", h.Tap.Queues)
	}
	if n, err := masq.Count(masq.Rule{Network: "vmct-110", ContainerID: rt.ContainerID, IfName: "eth0"}); err != nil || n != 2 {
		t.Fatalf("masquerade rules: %d, %v", n, err)
	}
	if err := cni.Check(rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := cni.Del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	e.assertClean()
}

// TestGuestMAC: the MAC from runtimeConfig (capability "mac") reaches the
// guest in every mode; macvtap in bridge mode keeps the pod's MAC apart.
func TestGuestMAC(t *testing.T) {
	const mac = "02:aa:bb:cc:dd:01"
	for _, tc := range []struct{ mode, macvtapMode string }{
		{bridgetap.ModeTCFilter, ""}, {bridgetap.ModeBridge, ""}, {bridgetap.ModeMacvtap, "bridge"}, {bridgetap.ModeMacvtap, "passthru"},
	} {
		t.Run(tc.mode+tc.macvtapMode, func(t *testing.T) {
			e := newEnv(t)
			conf := e.vmBridge(tc.mode, map[string]any{"capabilities": map[string]bool{"mac": true}})
			if tc.macvtapMode != "" {
				conf["macvtapMode"] = tc.macvtapMode
			}
			cni := e.cni("1.1.0", conf)
			ns := testutil.NewNS(t)
			rt := testutil.Runtime(testutil.UniqueName("mac"), ns.Path, "eth0")
			rt.CapabilityArgs = map[string]any{"mac": mac}
			res, err := cni.Add(rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			h, err := hint.Read(e.stateDir, rt.ContainerID, "eth0")
			if err != nil || h.Guest.MAC != mac {
				t.Fatalf("guest mac %v (%v)", h, err)
			}
			pseudo := res.Interfaces[hint.PseudoInterfaces(res, rt.ContainerID)[0]]
			if pseudo.Mac != mac {
				t.Fatalf("pseudo-interface mac %s", pseudo.Mac)
			}
			pod := linkIn(t, ns.Path, "eth0")
			if tc.macvtapMode == "bridge" || tc.mode == bridgetap.ModeBridge {
				if pod.Attrs().HardwareAddr.String() == mac {
					t.Fatal("pod interface kept the guest MAC")
				}
			}
			if err := cni.Check(rt); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			if err := cni.Del(rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			e.assertClean()
		})
	}
}

// TestResultVersions: results for 0.4.0, 1.0.0 and 1.1.0 all carry the
// pseudo-interface and interface indexes; CHECK and DEL work for each.
func TestResultVersions(t *testing.T) {
	for _, version := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t)
			cni := e.cni(version, e.vmBridge(bridgetap.ModeTCFilter, nil))
			ns := testutil.NewNS(t)
			rt := testutil.Runtime(testutil.UniqueName("v"), ns.Path, "eth0")
			raw, err := cni.RawAdd(rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if raw.Version() != version {
				t.Fatalf("result version %s", raw.Version())
			}
			if version == "0.4.0" {
				r := raw.(*types040.Result)
				found := false
				for _, iface := range r.Interfaces {
					found = found || iface.Sandbox == rt.ContainerID
				}
				if !found || len(r.IPs) != 2 || r.IPs[1].Interface == nil {
					t.Fatalf("0.4.0 result lost the pseudo-interface: %+v", r)
				}
			}
			if err := cni.Check(rt); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			if err := cni.Del(rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			e.assertClean()
		})
	}
}

// TestParallelAdds: 50 ADDs at once on one host bridge (real binaries
// through libcni) all succeed, each gets its own address, and DEL leaves
// nothing behind.
func TestParallelAdds(t *testing.T) {
	const n = 50
	e := newEnv(t)
	cni := e.cni("1.1.0", e.vmBridge(bridgetap.ModeTCFilter, nil))
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		rts[i] = testutil.Runtime(testutil.UniqueName("par"), testutil.NewNS(t).Path, "eth0")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	ips := make([]net.IP, n)
	for i, rt := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cni.Add(rt)
			if err == nil {
				ips[i] = res.IPs[0].Address.IP
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
			continue
		}
		if seen[ips[i].String()] {
			t.Errorf("address %s handed out twice", ips[i])
		}
		seen[ips[i].String()] = true
	}
	for i, rt := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cni.Del(rt)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("DEL %d: %v", i, err)
		}
	}
	e.assertClean()
}

// TestStaticIPAMAndLogFile: another IPAM plugin (static) works the same,
// and logs go to logFile, never to stdout (libcni parses stdout as the result).
func TestStaticIPAMAndLogFile(t *testing.T) {
	e := newEnv(t)
	logFile := filepath.Join(t.TempDir(), "vm-bridge.log")
	base := strings.TrimSuffix(e.subnet, "0/24")
	conf := e.vmBridge(bridgetap.ModeBridge, map[string]any{
		"logFile": logFile, "logLevel": "debug",
		"ipam": map[string]any{"type": "static", "addresses": []map[string]string{
			{"address": base + "50/24", "gateway": base + "1"},
		}, "routes": []map[string]string{{"dst": "0.0.0.0/0", "gw": base + "1"}}},
	})
	cni := e.cni("1.1.0", conf)
	ns := testutil.NewNS(t)
	rt := testutil.Runtime(testutil.UniqueName("st"), ns.Path, "eth0")
	res, err := cni.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if got := res.IPs[0].Address.String(); got != base+"50/24" {
		t.Fatalf("static address %s", got)
	}
	if err := cni.Check(rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := cni.Del(rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	data, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(data), `"msg":"ADD done"`) || !strings.Contains(string(data), `"msg":"DEL done"`) {
		t.Fatalf("log file: %v\n%s", err, data)
	}
	e.assertClean()
}

// TestHostBridgeMACIsStable: the host bridge vm-bridge creates keeps one
// MAC while pods come and go (a bridge without an explicit MAC takes its
// lowest port's, and every pod's ARP entry for the gateway goes stale).
func TestHostBridgeMACIsStable(t *testing.T) {
	e := newEnv(t)
	cni := e.cni("1.1.0", e.vmBridge(bridgetap.ModeTCFilter, nil))
	var rts []*libcni.RuntimeConf
	var macs []string
	for i := 0; i < 4; i++ {
		rt := testutil.Runtime(testutil.UniqueName("mac"), testutil.NewNS(t).Path, "eth0")
		if _, err := cni.Add(rt); err != nil {
			t.Fatal(err)
		}
		rts = append(rts, rt)
		br, err := link.ByName(e.bridge)
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, br.Attrs().HardwareAddr.String())
	}
	for _, rt := range rts[:3] {
		if err := cni.Del(rt); err != nil {
			t.Fatal(err)
		}
		br, _ := link.ByName(e.bridge)
		macs = append(macs, br.Attrs().HardwareAddr.String())
	}
	for _, m := range macs {
		if m != macs[0] {
			t.Fatalf("host bridge MAC changed: %v", macs)
		}
	}
	if err := cni.Del(rts[3]); err != nil {
		t.Fatal(err)
	}
	e.assertClean()
}
