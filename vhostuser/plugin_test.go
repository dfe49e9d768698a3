package vhostuser_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vhostuser"
)

// world is a private OVS-DPDK bridge plus state, socket and IPAM dirs.
type world struct {
	t       *testing.T
	ovs     *testutil.OVS
	bridge  string
	sockDir string
	dir     string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ovs := testutil.StartOVS(t)
	w := &world{t: t, ovs: ovs, bridge: testutil.UniqueName("vmctbr"), dir: t.TempDir()}
	ovs.AddBridge(w.bridge)
	w.sockDir, _ = os.MkdirTemp("/tmp", "vmct-vhu")
	t.Cleanup(func() { _ = os.RemoveAll(w.sockDir) })
	t.Setenv("CNI_PATH", testutil.Binaries(t))
	return w
}

func (w *world) conf(extra map[string]any) []byte {
	c := map[string]any{
		"cniVersion": "1.1.0", "name": "vmct-vhu", "type": "vm-vhostuser", "backend": "ovs-dpdk",
		"bridge": w.bridge, "ovsdb": w.ovs.DB, "socketDir": w.sockDir, "stateDir": filepath.Join(w.dir, "state"),
		"vlan": 42, "queues": 2, "mtu": 1400,
		"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(w.dir, "ipam"),
			"ranges": [][]map[string]string{{{"subnet": "10.194.0.0/24"}}}},
	}
	for k, v := range extra {
		c[k] = v
	}
	data, _ := json.Marshal(c)
	return data
}

func args(conf []byte, containerID string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: containerID, IfName: "net1", Netns: "/var/run/netns/none", StdinData: conf}
}

func (w *world) ports() string {
	return w.ovs.Vsctl("--bare", "--columns=name", "find", "Port", "external_ids:vmcni-network=vmct-vhu")
}

// assertClean: no vmcni port, no socket directory, no record, no lease.
func (w *world) assertClean(before testutil.Snapshot) {
	w.t.Helper()
	if p := w.ports(); p != "" {
		w.t.Fatalf("OVS ports left: %s", p)
	}
	if entries, _ := os.ReadDir(w.sockDir); len(entries) != 0 {
		w.t.Fatalf("socket dir not empty: %v", entries)
	}
	testutil.AssertSameHost(w.t, before, []string{filepath.Join(w.dir, "state"), filepath.Join(w.dir, "ipam")})
}

// TestAddCheckDelOVS: the port, its options and tag, the directory, the
// hint and the result; CHECK; DEL twice; DEL without ADD.
func TestAddCheckDelOVS(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	w := newWorld(t)
	before := testutil.TakeSnapshot(t, []string{filepath.Join(w.dir, "state"), filepath.Join(w.dir, "ipam")})
	var out strings.Builder
	p := vhostuser.New(plugin.WithStdout(&out))
	devInfo := filepath.Join(t.TempDir(), "devinfo.json")
	withDevInfo := w.conf(map[string]any{"runtimeConfig": map[string]any{"CNIDeviceInfoFile": devInfo}})
	if err := p.Add(args(withDevInfo, "c1")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	var info hint.DeviceInfo
	if data, err := os.ReadFile(devInfo); err != nil || json.Unmarshal(data, &info) != nil ||
		info.Type != "vhost-user" || info.VhostUser == nil || info.VhostUser.Mode != "server" {
		t.Fatalf("device-info file: %+v %v", info, err)
	}
	h, err := hint.Read(filepath.Join(w.dir, "state"), "c1", "net1")
	if err != nil || h.Kind != hint.KindVhostUser || h.VhostUser.Queues != 2 || h.Guest.MTU != 1400 || len(h.Guest.IPs) != 1 {
		t.Fatalf("hint %+v %v", h, err)
	}
	name := w.ports()
	if name == "" || strings.Contains(name, "\n") {
		t.Fatalf("want one port, got %q", name)
	}
	if typ := w.ovs.Vsctl("get", "Interface", name, "type"); typ != "dpdkvhostuserclient" {
		t.Fatalf("type %q", typ)
	}
	if path := w.ovs.Vsctl("get", "Interface", name, "options:vhost-server-path"); strings.Trim(path, "\"") != h.VhostUser.Socket {
		t.Fatalf("server path %s, want %s", path, h.VhostUser.Socket)
	}
	if tag := w.ovs.Vsctl("get", "Port", name, "tag"); tag != "42" {
		t.Fatalf("tag %s", tag)
	}
	fi, err := os.Stat(filepath.Dir(h.VhostUser.Socket))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("directory: %v %v", fi, err)
	}
	var res map[string]any
	_ = json.Unmarshal([]byte(out.String()), &res)
	var parsed struct {
		Interfaces []struct {
			SocketPath string `json:"socketPath"`
			Sandbox    string `json:"sandbox"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal([]byte(out.String()), &parsed); err != nil || len(parsed.Interfaces) != 1 ||
		parsed.Interfaces[0].SocketPath != h.VhostUser.Socket || parsed.Interfaces[0].Sandbox != "c1" {
		t.Fatalf("result lacks the pseudo-interface with socketPath: %s", out.String())
	}
	check := args(w.conf(map[string]any{"prevResult": res}), "c1")
	if err := p.Check(check); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := p.Del(args(withDevInfo, "c1")); err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if testutil.FileExists(devInfo) {
		t.Fatal("DEL left the device-info file")
	}
	if err := p.Del(args(w.conf(nil), "never")); err != nil {
		t.Fatalf("DEL without ADD: %v", err)
	}
	w.assertClean(before)
}

// TestFaultsAndCrashes fails ADD at each of its fault points and checks
// the rollback leaves OVS, the socket, state and IPAM dirs as before; then
// crashes ADD there and checks DEL or GC cleans up.
func TestFaultsAndCrashes(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	w := newWorld(t)
	before := testutil.TakeSnapshot(t, []string{filepath.Join(w.dir, "state"), filepath.Join(w.dir, "ipam")})
	testutil.FaultSweep{
		Add: func(opts ...plugin.Option) error {
			return vhostuser.New(append(opts, plugin.WithStdout(io.Discard))...).Add(args(w.conf(nil), "c1"))
		},
		Del: func() error { return vhostuser.New().Del(args(w.conf(nil), "c1")) },
		GC: func() error {
			return vhostuser.New().GC(args(w.conf(map[string]any{"cni.dev/valid-attachments": []types.GCAttachment{}}), ""))
		},
		Same:     func(testing.TB, string) { w.assertClean(before) },
		Want:     []string{"record", "directory", "ipam", "port", "hint"},
		Crash:    true,
		FailUndo: true,
	}.Run(t)
}

// TestGCKeepsValidRemovesStale: GC deletes an attachment not listed and an
// orphan tagged port with no record, and keeps the valid one.
func TestGCKeepsValidRemovesStale(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	w := newWorld(t)
	p := vhostuser.New(plugin.WithStdout(io.Discard))
	for _, id := range []string{"keep", "stale"} {
		if err := p.Add(args(w.conf(nil), id)); err != nil {
			t.Fatal(err)
		}
	}
	w.ovs.Vsctl("add-port", w.bridge, "vhuorphan", "--", "set", "Interface", "vhuorphan", "type=dpdkvhostuserclient",
		"options:vhost-server-path=/tmp/vmct-nowhere", "--", "set", "Port", "vhuorphan",
		"external_ids:vmcni-network=vmct-vhu", "external_ids:vmcni-container-id=gone", "external_ids:vmcni-ifname=net1")
	gc := args(w.conf(map[string]any{"cni.dev/valid-attachments": []types.GCAttachment{{ContainerID: "keep", IfName: "net1"}}}), "")
	if err := p.GC(gc); err != nil {
		t.Fatalf("GC: %v", err)
	}
	ports := w.ports()
	if len(strings.Fields(ports)) != 1 || strings.Contains(ports, "orphan") {
		t.Fatalf("ports after GC: %s", ports)
	}
	if _, err := hint.Read(filepath.Join(w.dir, "state"), "stale", "net1"); err == nil {
		t.Fatal("stale hint kept")
	}
	if err := p.Del(args(w.conf(nil), "keep")); err != nil {
		t.Fatal(err)
	}
}

// TestBadPathsAndStatus: over-long or escaping paths are code 7 with no side
// effect; STATUS is 50 when the bridge is missing or OVS is down.
func TestBadPathsAndStatus(t *testing.T) {
	testutil.RequiresOVSDPDK(t)
	w := newWorld(t)
	before := testutil.TakeSnapshot(t, []string{filepath.Join(w.dir, "state"), filepath.Join(w.dir, "ipam")})
	p := vhostuser.New(plugin.WithStdout(io.Discard))
	long := "/tmp/" + strings.Repeat("d", 90)
	for name, conf := range map[string][]byte{
		"over-long socket path": w.conf(map[string]any{"socketDir": long}),
		"relative socketDir":    w.conf(map[string]any{"socketDir": "run/vhu"}),
		"unclean socketDir":     w.conf(map[string]any{"socketDir": w.sockDir + "/../etc"}),
		"client mode with ovs":  w.conf(map[string]any{"mode": "client"}),
		"bad vlan":              w.conf(map[string]any{"vlan": 5000}),
		"bad bridge":            w.conf(map[string]any{"bridge": "br;rm"}),
	} {
		err := p.Add(args(conf, "c1"))
		if cnierr.Code(err) != 7 {
			t.Errorf("%s: code %d (%v), want 7", name, cnierr.Code(err), err)
		}
	}
	if testutil.FileExists(long) {
		t.Fatal("over-long socketDir was created")
	}
	if err := p.Add(args(w.conf(nil), "../escape")); err == nil {
		t.Fatal("escaping container ID accepted")
	}
	w.assertClean(before)

	if err := p.Status(args(w.conf(nil), "")); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if err := p.Status(args(w.conf(map[string]any{"bridge": "vmctnobr"}), "")); cnierr.Code(err) != 50 {
		t.Fatalf("STATUS without bridge: %v", err)
	}
	w.ovs.StopSwitch()
	defer w.ovs.StartSwitch()
	if err := p.Status(args(w.conf(map[string]any{"ovsdb": "unix:/tmp/vmct-no-such.sock", "ovsTimeout": 1}), "")); cnierr.Code(err) != 50 {
		t.Fatalf("STATUS with OVS down: %v", err)
	}
}
