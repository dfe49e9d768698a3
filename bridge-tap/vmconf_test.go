package bridgetap_test

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/firecracker-microvm/firecracker-go-sdk/cni/vmconf"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// TestFirecrackerVMConf: firecracker-go-sdk v1.0.0's cni/vmconf, which the
// SDK and firecracker-containerd run on a CNI result, reads vm-bridge's
// result unchanged in every mode, standalone and chained after ptp: the
// tap (or macvtap), its netns, the guest MAC and MTU, the IP with its
// gateway, and the kernel ip= parameter. A dual-stack attachment it
// refuses (it takes exactly one IP per interface, IPv4 only): the hint
// file, which carries both addresses, is the way out.
func TestFirecrackerVMConf(t *testing.T) {
	setups := map[string]func(e *testEnv, mode string) []map[string]any{
		"standalone": func(e *testEnv, mode string) []map[string]any { return []map[string]any{e.vmBridge(mode, nil)} },
		"after-ptp": func(e *testEnv, mode string) []map[string]any {
			return []map[string]any{e.refPtp(), e.chainedVMBridge(mode)}
		},
	}
	for name, plugins := range setups {
		for _, mode := range modes {
			t.Run(name+"/"+mode, func(t *testing.T) {
				e := newEnv(t)
				a := addForVMConf(t, e, plugins(e, mode)...)
				res, rt, h, ns := a.res, a.rt, a.hint, a.netns
				conf, err := vmconf.StaticNetworkConfFrom(res, rt.ContainerID)
				if err != nil {
					t.Fatalf("vmconf: %v", err)
				}
				ip := h.Guest.IPs[0]
				if conf.TapName != h.DeviceName() || conf.NetNSPath != ns || conf.VMMacAddr != h.Guest.MAC ||
					conf.VMMTU != h.Guest.MTU || conf.VMIPConfig.Address.String() != ip.Address ||
					conf.VMIPConfig.Gateway.String() != ip.Gateway {
					t.Fatalf("vmconf read %+v (ip %v), the hint says %+v", conf, conf.VMIPConfig, h)
				}
				if boot := conf.IPBootParam(); !strings.HasPrefix(boot, strings.Split(ip.Address, "/")[0]+"::"+ip.Gateway+":") {
					t.Fatalf("ip= boot parameter %q for %s via %s", boot, ip.Address, ip.Gateway)
				}
				a.del()
			})
		}
	}

	t.Run("dual-stack", func(t *testing.T) {
		e := newEnv(t)
		a := addForVMConf(t, e, e.vmBridge("tcfilter", map[string]any{"ipam": e.ipam("fd00:" + strings.Split(e.subnet, ".")[2] + "::/64")}))
		_, err := vmconf.StaticNetworkConfFrom(a.res, a.rt.ContainerID)
		if err == nil || !strings.Contains(err.Error(), "expected to find 1 IP") {
			t.Fatalf("vmconf on a dual-stack result: %v, want its one-IP error", err)
		}
		t.Logf("vmconf on a dual-stack result: %v", err)
		if len(a.hint.Guest.IPs) != 2 {
			t.Fatalf("hint file: %+v; want both addresses", a.hint)
		}
		a.del()
	})
}

// vmconfAttachment is one ADD of TestFirecrackerVMConf.
type vmconfAttachment struct {
	res   *current.Result
	rt    *libcni.RuntimeConf
	hint  *hint.Hint
	netns string
	del   func() // DEL, then the host must be as before
}

func addForVMConf(t *testing.T, e *testEnv, plugins ...map[string]any) vmconfAttachment {
	t.Helper()
	cni := e.cni("1.1.0", plugins...)
	ns := testutil.NewNS(t)
	rt := testutil.Runtime(testutil.UniqueName("c"), ns.Path, "eth0")
	res, err := cni.Add(rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = cni.Del(rt) })
	h, err := hint.Read(e.stateDir, rt.ContainerID, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return vmconfAttachment{res: res, rt: rt, hint: h, netns: ns.Path, del: func() {
		t.Helper()
		if err := cni.Del(rt); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		e.assertClean()
	}}
}
