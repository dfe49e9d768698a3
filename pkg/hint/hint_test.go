package hint

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func tapHint() *Hint {
	return &Hint{
		HintVersion: Version, Plugin: "vm-bridge", Network: "n", ContainerID: "c1", IfName: "eth0",
		Netns: "/var/run/netns/c1", Kind: KindTap,
		Tap:   &Tap{Name: "tap_eth0", Netns: "/var/run/netns/c1", Queues: 1, VnetHdr: true, Wiring: "tcfilter"},
		Guest: Guest{MAC: "02:00:00:00:00:01", MTU: 1500, IPs: []IP{{Address: "10.0.0.2/24", Gateway: "10.0.0.1"}}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Hint)
		ok   bool
	}{
		{"valid", func(*Hint) {}, true},
		{"wrong version", func(h *Hint) { h.HintVersion = "2" }, false},
		{"unknown kind", func(h *Hint) { h.Kind = "vdpa" }, false},
		{"missing section", func(h *Hint) { h.Tap = nil }, false},
		{"stray section", func(h *Hint) { h.VFIO = &VFIO{PCIAddress: "0000:00:01.0"} }, false},
		{"bad mac", func(h *Hint) { h.Guest.MAC = "nope" }, false},
		{"bad ip", func(h *Hint) { h.Guest.IPs[0].Address = "10.0.0.2" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tapHint()
			tt.mut(h)
			if err := h.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestValidateKeyRejectsPathTricks(t *testing.T) {
	for _, k := range [][2]string{{"../x", "eth0"}, {"c1", ".."}, {"c1", "a/b"}, {"", "eth0"}, {"c1", "0123456789abcdef"}, {"-c", "eth0"}} {
		if ValidateKey(k[0], k[1]) == nil {
			t.Errorf("ValidateKey(%q, %q) accepted", k[0], k[1])
		}
	}
	if err := ValidateKey("abc-1.2_x", "net1"); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReadRemove(t *testing.T) {
	dir := t.TempDir()
	h := tapHint()
	if err := Write(dir, h); err != nil {
		t.Fatal(err)
	}
	if got := Path(dir, "c1", "eth0"); got != filepath.Join(dir, "c1", "eth0", "hint.json") {
		t.Fatalf("path %s", got)
	}
	back, err := Read(dir, "c1", "eth0")
	if err != nil || back.Tap.Name != "tap_eth0" {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if err := Remove(dir, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "c1", "eth0"); err != nil {
		t.Fatal("second remove:", err)
	}
	if _, err := Read(dir, "c1", "eth0"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read after remove: %v", err)
	}
}

func TestAppendToResultFirecrackerConvention(t *testing.T) {
	_, addr, _ := net.ParseCIDR("10.0.0.0/24")
	addr.IP = net.ParseIP("10.0.0.2")
	res := &current.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{{Name: "eth0", Sandbox: "/var/run/netns/c1", Mac: "02:00:00:00:00:01"}},
		IPs:        []*current.IPConfig{{Address: *addr, Gateway: net.ParseIP("10.0.0.1"), Interface: current.Int(0)}},
	}
	h := tapHint()
	idx, err := AppendToResult(res, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	if idx != 2 || res.Interfaces[1].Name != "tap_eth0" || res.Interfaces[1].Sandbox != "/var/run/netns/c1" {
		t.Fatalf("device interface: %+v", res.Interfaces)
	}
	pseudo := res.Interfaces[idx]
	if pseudo.Name != "tap_eth0" || pseudo.Sandbox != "c1" || pseudo.Mac != h.Guest.MAC || pseudo.Mtu != 1500 {
		t.Fatalf("pseudo-interface: %+v", pseudo)
	}
	if len(res.IPs) != 2 || *res.IPs[0].Interface != 0 || *res.IPs[1].Interface != idx {
		t.Fatalf("ips: %+v", res.IPs)
	}
	if err := CheckResult(res, h); err != nil {
		t.Fatal(err)
	}
	// survives conversion to 0.4.0 and back
	old, err := res.GetAsVersion("0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(old)
	parsed, err := types040.NewResult(data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := current.NewResultFromResult(parsed)
	if err != nil {
		t.Fatal(err)
	}
	if got := PseudoInterfaces(back, "c1"); len(got) != 1 {
		t.Fatalf("0.4.0 round trip lost the pseudo-interface: %s", data)
	}
}

func TestVhostUserResultAndDeviceInfo(t *testing.T) {
	h := &Hint{
		HintVersion: Version, ContainerID: "c1", IfName: "net1", Kind: KindVhostUser,
		VhostUser: &VhostUser{Socket: "/run/vmcni/vhost-user/c1-net1/sock", Mode: "server", Queues: 1},
		Guest:     Guest{MAC: "02:00:00:00:00:09"},
	}
	res := &current.Result{CNIVersion: "1.1.0", IPs: []*current.IPConfig{{Address: net.IPNet{IP: net.ParseIP("10.1.0.2"), Mask: net.CIDRMask(24, 32)}}}}
	idx, err := AppendToResult(res, h, -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Interfaces[idx].SocketPath != h.VhostUser.Socket || *res.IPs[0].Interface != idx {
		t.Fatalf("result: %+v %+v", res.Interfaces, res.IPs)
	}
	path := filepath.Join(t.TempDir(), "devinfo.json")
	wrote, err := WriteDeviceInfo(path, h)
	if err != nil || !wrote {
		t.Fatal(wrote, err)
	}
	data, _ := os.ReadFile(path)
	var info DeviceInfo
	if err := json.Unmarshal(data, &info); err != nil || info.Type != "vhost-user" || info.VhostUser.Path != h.VhostUser.Socket {
		t.Fatalf("device info %s", data)
	}
	if wrote, _ := WriteDeviceInfo(path, tapHint()); wrote {
		t.Fatal("device-info written for a tap")
	}
}

// WriteFileDeferSync's content is in place before sync, with the mode
// asked for and no temporary file; sync then succeeds, for a new name and
// for a rewrite.
func TestWriteFileDeferSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "record.json")
	for _, content := range []string{"first", "second"} {
		sync, err := WriteFileDeferSync(path, []byte(content), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("before sync: %q, %v; want %q", got, err, content)
		}
		if err := sync(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode: %v, %v", st, err)
		}
		tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp*"))
		if len(tmps) != 0 {
			t.Fatalf("temporary files left: %v", tmps)
		}
	}
}
