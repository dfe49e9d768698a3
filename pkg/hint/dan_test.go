package hint

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata golden files")

// kataGoDanConfig mirrors the Go runtime's DAN types
// (kata-containers src/runtime/virtcontainers/types/dan.go) with the
// fields its addDanEndpoints reads.
type kataGoDanConfig struct {
	Devices []struct {
		Name     string `json:"name"`
		GuestMac string `json:"guest_mac"`
		Device   struct {
			Type        string `json:"type"`
			PciDeviceID string `json:"pci_device_id"`
		} `json:"device"`
		NetworkInfo struct {
			Interface struct {
				IPAddresses []string `json:"ip_addresses"`
				MTU         uint64   `json:"mtu"`
			} `json:"interface"`
			Routes []struct {
				Dest    string `json:"dest"`
				Gateway string `json:"gateway"`
			} `json:"routes"`
		} `json:"network_info"`
	} `json:"devices"`
}

// TestDanFile writes a tap, a vhost-user and a vfio attachment of one
// sandbox to a DAN file and compares it with testdata/dan.golden.json
// (go test -update rewrites it); removing them one by one removes the
// file with the last. A macvtap and a memif have no DAN type.
func TestDanFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dans")
	guest := Guest{MAC: "02:00:00:00:00:01", MTU: 1450,
		IPs:    []IP{{Address: "10.0.0.2/24", Gateway: "10.0.0.1"}, {Address: "fd00::2/64"}},
		Routes: []Route{{Dst: "0.0.0.0/0", GW: "10.0.0.1"}, {Dst: "fd00:1::/64", GW: "fd00::1"}}}
	hints := map[string]*Hint{
		"eth0": {Kind: KindTap, Netns: "/var/run/netns/p", Guest: guest,
			Tap: &Tap{Name: "tap_eth0", Netns: "/var/run/netns/p", Queues: 2, VnetHdr: true, Wiring: "tcfilter"}},
		"net1": {Kind: KindVhostUser, Guest: guest,
			VhostUser: &VhostUser{Socket: "/var/run/vmcni/vhu/p-net1.sock", Mode: "server", Queues: 4}},
		"net2": {Kind: KindVFIO, Guest: Guest{MAC: "02:00:00:00:00:03"},
			VFIO: &VFIO{PCIAddress: "0000:03:10.1", IOMMUGroup: "12", DevicePath: "/dev/vfio/12"}},
	}
	for _, ifName := range []string{"net2", "eth0", "net1"} { // written out of order
		d, err := DanDeviceFor(hints[ifName], ifName)
		if err != nil {
			t.Fatal(err)
		}
		if err := AddDanDevice(dir, "sandbox1", hints[ifName].Netns, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(DanPath(dir, "sandbox1"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "dan.golden.json")
	if *updateGolden {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("DAN file:\n%s\nwant (%s):\n%s", got, golden, want)
	}

	// what the Go runtime takes: vfio only, with a MAC and CIDR addresses
	var goDan kataGoDanConfig
	if err := json.Unmarshal(got, &goDan); err != nil {
		t.Fatalf("the Go runtime's types do not decode it: %v", err)
	}
	if d := goDan.Devices[2]; d.Device.Type != "vfio" || d.Device.PciDeviceID != "0000:03:10.1" || d.GuestMac == "" || d.NetworkInfo.Interface.MTU != 1500 {
		t.Fatalf("vfio entry as the Go runtime reads it: %+v", d)
	}

	for _, kind := range []*Hint{{Kind: KindMacvtap, Macvtap: &Macvtap{}}, {Kind: KindMemif, Memif: &Memif{}}} {
		if _, err := DanDeviceFor(kind, "eth9"); err == nil {
			t.Errorf("%s: no error", kind.Kind)
		}
	}
	if err := AddDanDevice(dir, "sandbox1", "/var/run/netns/other", DanDevice{Name: "x"}); err == nil {
		t.Error("an entry for another netns was accepted")
	}
	for _, ifName := range []string{"net1", "eth0", "net2", "net2"} {
		if err := RemoveDanDevice(dir, "sandbox1", ifName); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(DanPath(dir, "sandbox1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DAN file left after its last entry: %v", err)
	}
	if err := RemoveDanDevice(filepath.Join(dir, "missing"), "sandbox1", "eth0"); err != nil {
		t.Fatalf("remove from a missing directory: %v", err)
	}
}
