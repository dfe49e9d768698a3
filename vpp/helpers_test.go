package vpp_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/fakevpp"
)

const netName = "vppnet"

// env is one test's fake VPP, state and socket directories and network
// config.
type env struct {
	t         *testing.T
	vpp       *fakevpp.VPP
	stateDir  string
	socketDir string
	conf      map[string]any
}

// newEnv returns an env whose config is the base vhost-user l2 config
// merged with overrides.
func newEnv(t *testing.T, overrides map[string]any) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, vpp: fakevpp.New(), stateDir: filepath.Join(root, "state"), socketDir: filepath.Join(root, "sock")}
	e.conf = map[string]any{
		"cniVersion": "1.1.0", "name": netName, "type": "vm-vpp",
		"bridgeDomain": 10, "stateDir": e.stateDir, "socketDir": e.socketDir,
	}
	for k, v := range overrides {
		if v == nil {
			delete(e.conf, k)
			continue
		}
		e.conf[k] = v
	}
	t.Cleanup(func() {
		if u := e.vpp.Unknown(); len(u) > 0 {
			t.Errorf("requests the fake does not model: %v", u)
		}
	})
	return e
}

func (e *env) args(containerID, ifName string, extra map[string]any) *skel.CmdArgs {
	c := map[string]any{}
	for k, v := range e.conf {
		c[k] = v
	}
	for k, v := range extra {
		c[k] = v
	}
	data, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return &skel.CmdArgs{ContainerID: containerID, Netns: "/var/run/netns/" + containerID, IfName: ifName, StdinData: data}
}

func (e *env) plugin(out *bytes.Buffer, opts ...plugin.Option) *vpp.Plugin {
	if out == nil {
		out = &bytes.Buffer{}
	}
	return vpp.New(append([]plugin.Option{plugin.WithStdout(out)}, opts...)...).WithConnector(e.vpp.Connector())
}

// add runs ADD for (containerID, eth0) and returns the printed result.
func (e *env) add(containerID string, opts ...plugin.Option) (*current.Result, error) {
	return e.addArgs(e.args(containerID, "eth0", nil), opts...)
}

func (e *env) addArgs(args *skel.CmdArgs, opts ...plugin.Option) (*current.Result, error) {
	var out bytes.Buffer
	if err := e.plugin(&out, opts...).Add(args); err != nil {
		return nil, err
	}
	res := &current.Result{}
	if err := json.Unmarshal(out.Bytes(), res); err != nil {
		e.t.Fatalf("decode result: %v\n%s", err, out.String())
	}
	return res, nil
}

func (e *env) mustAdd(containerID string) *current.Result {
	e.t.Helper()
	res, err := e.add(containerID)
	if err != nil {
		e.t.Fatalf("ADD %s: %v", containerID, err)
	}
	return res
}

func (e *env) del(containerID string) error {
	return e.plugin(nil).Del(e.args(containerID, "eth0", nil))
}

func (e *env) socketPath(containerID, name string) string {
	return filepath.Join(e.socketDir, containerID, "eth0", name)
}

// assertVPPClean checks the fake holds only what VPP starts with (local0,
// memif socket 0, no route) plus the given bridge domains.
func assertVPPClean(t *testing.T, v *fakevpp.VPP, bds ...uint32) {
	t.Helper()
	if ifs := v.Interfaces(); len(ifs) != 1 || ifs[0].Name != "local0" {
		t.Errorf("VPP interfaces left: %+v", ifs)
	}
	assertVPPCleanBut(t, v, bds...)
}

// assertVPPCleanButGateway is assertVPPClean allowing the l3 network's
// gateway loopback, which DEL and GC keep (like the l2 bridge domain): at
// most one loopback, tagged vpp.GatewayTag or, left by an ADD interrupted
// before the tag, untagged with the network's MAC; no interface uses it.
func assertVPPCleanButGateway(t testing.TB, v *fakevpp.VPP, bds ...uint32) {
	t.Helper()
	ifs := v.Interfaces()
	if len(ifs) == 0 || ifs[0].Name != "local0" || len(ifs) > 2 {
		t.Errorf("VPP interfaces left: %+v", ifs)
	} else if len(ifs) == 2 && !isGateway(ifs[1]) {
		t.Errorf("VPP interface left that is not the gateway loopback: %+v", ifs[1])
	}
	assertVPPCleanBut(t, v, bds...)
}

func isGateway(i fakevpp.Iface) bool {
	return i.Loopback && (i.Tag == vpp.GatewayTag(netName) || i.Tag == "" && i.MAC == vpp.GatewayMAC(netName).String())
}

// assertVPPCleanBut checks all but the interfaces.
func assertVPPCleanBut(t testing.TB, v *fakevpp.VPP, bds ...uint32) {
	t.Helper()
	for _, i := range v.Interfaces() {
		if i.Unnumbered {
			t.Errorf("interface %s left unnumbered to %d", i.Name, i.UnnumberedSource)
		}
	}
	if r := v.Routes(); len(r) != 0 {
		t.Errorf("routes left: %+v", r)
	}
	if s := v.MemifSockets(); len(s) != 1 || s[0] != fakevpp.DefaultMemifSocket {
		t.Errorf("memif sockets left: %v", s)
	}
	got := v.BridgeDomains()
	if len(got) != len(bds) {
		t.Errorf("bridge domains %v, want %v", got, bds)
	}
	for _, id := range bds {
		if _, ok := got[id]; !ok {
			t.Errorf("bridge domain %d missing", id)
		}
	}
}

// assertNoFiles checks dir holds no file (directories may stay only when
// allowed).
func assertNoFiles(t testing.TB, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		var left []string
		_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && p != dir {
				left = append(left, strings.TrimPrefix(p, dir))
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("%s not empty: %v", dir, left)
		}
	}
}

// withoutDumps drops read-only requests from names.
func withoutDumps(names []string) []string {
	var out []string
	for _, n := range names {
		if !strings.HasSuffix(n, "_dump") {
			out = append(out, n)
		}
	}
	return out
}
