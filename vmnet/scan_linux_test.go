package vmnet_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vmnet"
)

// TestPlanFromNetnsMatchesResult: for every vm-bridge mode, the Kata-style
// scan of the pod netns finds the same device, guest MAC, addresses and
// gateway as the plan built from the CNI result and hint file.
func TestPlanFromNetnsMatchesResult(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := testutil.Binaries(t)
	for i, mode := range []string{"tcfilter", "bridge", "macvtap"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			bridge := testutil.UniqueName("vmctsc")
			t.Cleanup(func() { _ = link.DeleteByName(bridge) })
			conf, _ := json.Marshal(map[string]any{
				"cniVersion": "1.1.0", "name": "vmct-scan",
				"plugins": []map[string]any{{
					"type": "vm-bridge", "mode": mode, "bridge": bridge, "isGateway": true, "queues": 2,
					"stateDir": filepath.Join(dir, "state"), "macvtapMode": "bridge",
					"ipam": map[string]any{
						"type": "host-local", "dataDir": filepath.Join(dir, "ipam"),
						"ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.198.%d.0/24", i)}}},
						"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
					},
				}},
			})
			cni := testutil.NewCNI(t, bin, conf)
			ns := testutil.NewNS(t)
			rt := testutil.Runtime("scan1", ns.Path, "eth0")
			res, err := cni.RawAdd(rt)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cni.Del(rt) }()
			fromResult, err := vmnet.PlanFromResult(res, "scan1", filepath.Join(dir, "state"))
			if err != nil {
				t.Fatal(err)
			}
			scanned, err := vmnet.PlanFromNetns(ns.Path)
			if err != nil {
				t.Fatal(err)
			}
			if len(scanned.NICs) != 1 {
				t.Fatalf("scan found %d NICs", len(scanned.NICs))
			}
			want, got := fromResult.NICs[0], scanned.NICs[0]
			if got.Kind != want.Kind || got.Device != want.Device || got.MAC != want.MAC || got.Queues != 2 ||
				got.MTU != want.MTU || len(got.IPs) != 1 || got.IPs[0] != want.IPs[0] {
				t.Fatalf("scan:\n%+v\nresult:\n%+v", got, want)
			}
			if want.Macvtap != nil && (got.Macvtap.Major != want.Macvtap.Major || got.Macvtap.Minor != want.Macvtap.Minor) {
				t.Fatalf("macvtap char device %d:%d, want %d:%d", got.Macvtap.Major, got.Macvtap.Minor, want.Macvtap.Major, want.Macvtap.Minor)
			}
			if want.Tap != nil && got.Tap.Wiring != mode {
				t.Fatalf("wiring %q", got.Tap.Wiring)
			}
		})
	}
}
