package bridgetap_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
)

// TestKataDan runs ADD of two attachments of one sandbox (eth0 tcfilter,
// net1 bridge) with kataDanDir set: one DAN file holds both host-tap
// entries, in name order, with the hint's guest MAC, addresses, MTU and
// routes; CHECK reads it; DEL of each takes its entry out and the last
// one removes the file; a second DEL is success. Macvtap has no DAN type:
// its ADD is refused (code 7) and leaves nothing.
func TestKataDan(t *testing.T) {
	e := newEnv(t)
	danDir := filepath.Join(t.TempDir(), "dans")
	ns := testutil.NewNS(t)
	id := testutil.UniqueName("c")
	type attachment struct{ ifName, mode string }
	atts := []attachment{{"net1", bridgetap.ModeBridge}, {"eth0", bridgetap.ModeTCFilter}}
	for _, at := range atts {
		cni := e.cni("1.1.0", e.vmBridge(at.mode, map[string]any{"kataDanDir": danDir}))
		rt := testutil.Runtime(id, ns.Path, at.ifName)
		if _, err := cni.Add(rt); err != nil {
			t.Fatalf("ADD %s: %v", at.ifName, err)
		}
		if err := cni.Check(rt); err != nil {
			t.Fatalf("CHECK %s: %v", at.ifName, err)
		}
	}
	dan, err := hint.ReadDan(danDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if dan.Netns != ns.Path || len(dan.Devices) != 2 || dan.Devices[0].Name != "eth0" || dan.Devices[1].Name != "net1" {
		t.Fatalf("DAN file: %+v", dan)
	}
	for _, d := range dan.Devices {
		h, err := hint.Read(e.stateDir, id, d.Name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Device.Type != hint.DanHostTap || d.Device.TapName != h.Tap.Name || d.GuestMAC != h.Guest.MAC ||
			d.NetworkInfo.Interface.MTU != h.Guest.MTU || len(d.NetworkInfo.Interface.IPAddresses) != 1 ||
			d.NetworkInfo.Interface.IPAddresses[0] != h.Guest.IPs[0].Address || len(d.NetworkInfo.Routes) == 0 {
			t.Fatalf("DAN entry %+v does not match hint %+v", d, h)
		}
	}
	if info, err := os.Stat(hint.DanPath(danDir, id)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("DAN file mode: %v %v", info, err)
	}

	macvtap := e.cni("1.1.0", e.vmBridge(bridgetap.ModeMacvtap, map[string]any{"kataDanDir": danDir}))
	_, err = macvtap.Add(testutil.Runtime(id, ns.Path, "net2"))
	testutil.AssertCode(t, err, 7)
	if !strings.Contains(err.Error(), "no Kata DAN type") {
		t.Fatalf("macvtap ADD: %v", err)
	}

	for i, at := range atts {
		cni := e.cni("1.1.0", e.vmBridge(at.mode, map[string]any{"kataDanDir": danDir}))
		rt := testutil.Runtime(id, ns.Path, at.ifName)
		for range 2 {
			if err := cni.Del(rt); err != nil {
				t.Fatalf("DEL %s: %v", at.ifName, err)
			}
		}
		dan, err := hint.ReadDan(danDir, id)
		if i == 0 && (err != nil || len(dan.Devices) != 1 || dan.Devices[0].Name != "eth0") {
			t.Fatalf("after DEL of net1: %+v, %v", dan, err)
		}
		if i == 1 && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after the last DEL the DAN file is still there: %+v, %v", dan, err)
		}
	}
	assertNetnsBare(t, ns.Path)
	e.assertClean()
}
