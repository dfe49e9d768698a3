package vmnet

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/hint"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/<name>.golden, or rewrites the file
// under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./vmnet/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./vmnet/ -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const (
	testCID   = "c1"
	testNetns = "/var/run/netns/c1"
)

// guestDual is a dual-stack guest section as vm-bridge writes it from a
// host-local result: a default route per family (the IPv6 one without gw,
// so it takes the address's gateway), an on-link route, an off-subnet
// next hop, and DNS with a domain.
func guestDual(mac string) hint.Guest {
	return hint.Guest{
		MAC: mac, MTU: 1400,
		IPs: []hint.IP{
			{Address: "10.22.0.5/24", Gateway: "10.22.0.1"},
			{Address: "fd00:22::5/64", Gateway: "fd00:22::1"},
		},
		Routes: []hint.Route{
			{Dst: "0.0.0.0/0", GW: "10.22.0.1"},
			{Dst: "::/0"},
			{Dst: "192.168.50.0/24", GW: "10.30.0.1"},
		},
		DNS: &types.DNS{Nameservers: []string{"10.22.0.1", "fd00:22::1"}, Domain: "pod.example", Search: []string{"svc.example"}},
	}
}

func baseHint(ifName string, kind hint.Kind, guest hint.Guest) *hint.Hint {
	return &hint.Hint{
		HintVersion: hint.Version, Plugin: "vm-bridge", Network: "vmnet",
		ContainerID: testCID, IfName: ifName, Netns: testNetns, Kind: kind, Guest: guest,
	}
}

func tapHint(ifName, tap string, queues int) *hint.Hint {
	h := baseHint(ifName, hint.KindTap, guestDual("2E:7D:1C:22:40:07"))
	h.Tap = &hint.Tap{Name: tap, Netns: testNetns, Queues: queues, VnetHdr: true, Wiring: "tcfilter"}
	return h
}

func macvtapHint() *hint.Hint {
	h := baseHint("eth1", hint.KindMacvtap, hint.Guest{
		MAC: "52:54:00:12:34:56", MTU: 1500,
		IPs:    []hint.IP{{Address: "10.40.0.9/16", Gateway: "10.40.0.1"}},
		Routes: []hint.Route{{Dst: "0.0.0.0/0"}},
	})
	h.Macvtap = &hint.Macvtap{Name: "mvt_eth1", Netns: testNetns, Ifindex: 7, Major: 240, Minor: 7, Mode: "bridge", Queues: 1, VnetHdr: true}
	return h
}

func vhostUserHint(mode string, queues int) *hint.Hint {
	h := baseHint("net1", hint.KindVhostUser, hint.Guest{
		MAC: "02:00:00:aa:00:01", MTU: 9000,
		IPs: []hint.IP{{Address: "fd00:77::10/64", Gateway: "fd00:77::1"}},
	})
	h.Netns = ""
	h.VhostUser = &hint.VhostUser{Socket: "/var/run/vmcni/c1-net1.sock", Mode: mode, Queues: queues}
	return h
}

func vfioHint() *hint.Hint {
	h := baseHint("net2", hint.KindVFIO, hint.Guest{
		MAC: "02:00:00:bb:00:02",
		IPs: []hint.IP{{Address: "192.168.7.20/24"}},
	})
	h.Netns = ""
	h.VFIO = &hint.VFIO{PCIAddress: "0000:3b:02.1", IOMMUGroup: "42", DevicePath: "/dev/vfio/42"}
	return h
}

func memifHint() *hint.Hint {
	h := baseHint("net3", hint.KindMemif, hint.Guest{MAC: "02:00:00:cc:00:03"})
	h.Netns = ""
	h.Memif = &hint.Memif{Socket: "/run/vpp/memif-c1.sock", Role: "client", Mode: "ethernet", ID: 1, Queues: 2, RingSize: 1024}
	return h
}

func mustPlan(t *testing.T, hints ...*hint.Hint) *Plan {
	t.Helper()
	p, err := PlanFromHints(hints...)
	if err != nil {
		t.Fatalf("PlanFromHints: %v", err)
	}
	return p
}

// fdsFor numbers descriptors from 3 the way a launcher would: one per queue
// of every tap and macvtap NIC.
func fdsFor(p *Plan) [][]int {
	fds := make([][]int, len(p.NICs))
	next := 3
	for i, n := range p.NICs {
		if n.Kind != hint.KindTap && n.Kind != hint.KindMacvtap {
			continue
		}
		for range n.Queues {
			fds[i] = append(fds[i], next)
			next++
		}
	}
	return fds
}
