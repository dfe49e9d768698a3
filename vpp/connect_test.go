package vpp_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// realPlugin uses the production connector (govpp socketclient).
func realPlugin() *vpp.Plugin { return vpp.New(plugin.WithStdout(&bytes.Buffer{})) }

// refusedSocket is a unix socket file nothing listens on (VPP died or is
// starting): connect(2) gets ECONNREFUSED.
func refusedSocket(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	return path
}

// silentSocket accepts connections and never answers (VPP busy starting).
func silentSocket(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return path
}

// TestUnreachableVPP checks the connection rule with the production
// connector: STATUS is 50 for every failure; ADD is 50 without a socket and
// 11 when the socket exists but VPP refuses or does not answer within
// timeout; neither leaves anything behind. DEL without a running VPP
// cleans local state; DEL against a VPP that does not answer is 11 and
// keeps its record.
func TestUnreachableVPP(t *testing.T) {
	cases := []struct {
		name    string
		socket  func(t *testing.T) string
		addCode uint
		delOK   bool
	}{
		{"socket absent", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.sock") }, 50, true},
		{"connection refused", refusedSocket, 11, true},
		{"no answer", silentSocket, 11, false},
		{"not a socket", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			_ = os.WriteFile(p, nil, 0o600)
			return p
		}, 50, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, map[string]any{"apiSocket": c.socket(t), "timeout": "300ms"})
			start := time.Now()
			err := realPlugin().Status(e.args("", "", nil))
			testutil.AssertCode(t, err, 50)
			err = realPlugin().Add(e.args("c1", "eth0", nil))
			testutil.AssertCode(t, err, c.addCode)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("STATUS+ADD took %s with a 300ms timeout", d)
			}
			assertNoFiles(t, e.stateDir, e.socketDir)

			// A record as a completed ADD leaves it, then DEL.
			recDir := filepath.Join(e.stateDir, "c1", "eth0")
			if err := os.MkdirAll(filepath.Join(e.socketDir, "c1", "eth0"), 0o750); err != nil {
				t.Fatal(err)
			}
			st := store.New(e.stateDir)
			if err := st.Put(&store.Record{Plugin: vpp.PluginName, Network: netName, ContainerID: "c1", IfName: "eth0",
				Config: e.args("c1", "eth0", nil).StdinData, Complete: true}); err != nil {
				t.Fatal(err)
			}
			err = realPlugin().Del(e.args("c1", "eth0", nil))
			if c.delOK {
				if err != nil {
					t.Fatalf("DEL with VPP not running: %v", err)
				}
				assertNoFiles(t, e.stateDir, e.socketDir)
				return
			}
			if err == nil {
				t.Fatal("DEL succeeded against an unusable VPP")
			}
			if _, statErr := os.Stat(filepath.Join(recDir, "record.json")); statErr != nil {
				t.Errorf("DEL dropped the record though VPP objects may remain: %v", statErr)
			}
		})
	}
}

// TestIncompatibleVPP: when VPP does not know a message with our CRC,
// ADD and STATUS fail with code 50 naming it, before any request; a config
// that does not use the message is unaffected.
func TestIncompatibleVPP(t *testing.T) {
	e := newEnv(t, map[string]any{"interface": "memif"})
	e.vpp.MakeIncompatible("memif_create_v2", "memif_dump")
	_, err := e.add("c1")
	testutil.AssertCode(t, err, 50)
	var inc *vppapi.IncompatibleError
	if !errors.As(err, &inc) {
		t.Fatalf("error %v is not an IncompatibleError", err)
	}
	for _, want := range []string{"memif_create_v2_", "memif_dump_"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s<crc>", err, want)
		}
	}
	if got := e.vpp.Names(); len(got) != 0 {
		t.Errorf("requests sent to an incompatible VPP: %v", got)
	}
	assertNoFiles(t, e.stateDir, e.socketDir)
	testutil.AssertCode(t, e.plugin(nil).Status(e.args("", "", nil)), 50)

	vhost := newEnv(t, nil)
	vhost.vpp.MakeIncompatible("memif_create_v2")
	if err := vhost.plugin(nil).Status(vhost.args("", "", nil)); err != nil {
		t.Errorf("vhost-user STATUS fails on a memif message: %v", err)
	}
	vhost.mustAdd("c1")
}

// TestStatus is fine with a reachable, compatible VPP.
func TestStatus(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.plugin(nil).Status(e.args("", "", nil)); err != nil {
		t.Fatal(err)
	}
}

// TestPathRules: a socket path over sun_path or outside socketDir is code 7
// (a container ID or ifname that cannot name a directory, code 4) before
// any side effect: no VPP connection, no file.
func TestPathRules(t *testing.T) {
	long := "/" + strings.Repeat("d", 40)
	cid64 := strings.Repeat("a", 64)
	cases := []struct {
		name      string
		socketDir string
		cid, ifn  string
		code      uint
	}{
		{"sun_path overflow", long, cid64, "eth0", 7},
		{"dotdot ifname", "", "c1", "..", 4},
		{"slash in container ID", "", "../../etc", "eth0", 4},
		{"unclean socketDir", "/run/vmcni/../../etc", "c1", "eth0", 7},
		{"relative socketDir", "run/vmcni", "c1", "eth0", 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if c.socketDir != "" {
				e.conf["socketDir"] = c.socketDir
			}
			err := e.plugin(nil).Add(e.args(c.cid, c.ifn, nil))
			testutil.AssertCode(t, err, c.code)
			if n := e.vpp.Connections(); n != 0 {
				t.Errorf("%d VPP connections before rejecting the path", n)
			}
			assertNoFiles(t, e.stateDir)
			if _, err := os.Stat(long); err == nil {
				t.Errorf("%s created", long)
			}
		})
	}
	// The longest attachment that fits: a 64-character container ID and a
	// 15-byte ifname under the default socketDir.
	if n := len(filepath.Join(vpp.DefaultSocketDir, cid64, "abcdefghijklmno", "memif.sock")); n > 107 {
		t.Errorf("default layout needs %d bytes", n)
	}
}

// TestSocketDirectory: 0750 (or socketDirMode), group-owned, and a symlink
// planted in socketDir is refused.
func TestSocketDirectory(t *testing.T) {
	e := newEnv(t, map[string]any{"group": "0", "socketDirMode": "0770"})
	e.mustAdd("c1")
	fi, err := os.Stat(filepath.Join(e.socketDir, "c1", "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o770 {
		t.Errorf("mode %v, want 0770", fi.Mode().Perm())
	}

	e2 := newEnv(t, nil)
	target := t.TempDir()
	if err := os.MkdirAll(e2.socketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(e2.socketDir, "c1")); err != nil {
		t.Fatal(err)
	}
	_, err = e2.add("c1")
	testutil.AssertCode(t, err, 7)
	assertVPPClean(t, e2.vpp)
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("wrote through the symlink: %v", entries)
	}
}
