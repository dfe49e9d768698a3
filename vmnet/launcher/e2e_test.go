package launcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vmnet/launcher"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// guestImage returns the test guest's kernel and initramfs. `make test`
// builds them (make guest) and sets VMCNI_GUEST_DIR; a plain `go test`
// without an image skips with the reason.
func guestImage(t *testing.T) (kernel, initrd string) {
	t.Helper()
	dir := os.Getenv("VMCNI_GUEST_DIR")
	required := dir != ""
	if dir == "" {
		dir = "/var/cache/vmcni/guest"
	}
	kernel, initrd = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initramfs.cpio.gz")
	if !testutil.FileExists(kernel) || !testutil.FileExists(initrd) {
		if required {
			t.Fatalf("no guest image in %s (run make guest)", dir)
		}
		t.Skipf("skipped: no guest image in %s; run `make guest` (make test does)", dir)
	}
	return kernel, initrd
}

// serveHost runs an HTTP server on the host for the guest to fetch, and
// returns its port.
func serveHost(t *testing.T) int { return serve(t, "tcp4", "hello from the host\n") }

// serve answers every GET with body on network ("tcp4", or "tcp" for IPv4
// and IPv6), any address, and returns the port.
func serve(t *testing.T, network, body string) int {
	t.Helper()
	ln, err := net.Listen(network, ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestGuestOnEveryMode boots the test guest on the device vm-bridge made in
// each mode and exchanges traffic both ways: host → guest ping, HTTP and a
// TCP echo; guest → gateway ping and HTTP to a host server. Afterwards the
// host is exactly as before.
func TestGuestOnEveryMode(t *testing.T) {
	testutil.RequiresRoot(t)
	kernel, initrd := guestImage(t)
	bin := testutil.Binaries(t)
	port := serveHost(t)
	for i, mode := range []string{"tcfilter", "bridge", "macvtap"} {
		t.Run(mode, func(t *testing.T) {
			n := newVMBridgeNet(t, mode, 10+i)
			before := testutil.TakeSnapshot(t, n.dirs, n.bridge)

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var console strings.Builder
			s, err := launcher.Start(ctx, launcher.Options{
				Conflist: n.conf, CNIPath: []string{bin}, Kernel: kernel, Initrd: initrd,
				Accel: "auto", BootTimeout: 60 * time.Second, Console: &console,
				ProbeGateway: true, ProbeTCP: fmt.Sprintf("%s:%d", n.gateway, port),
			})
			if err != nil {
				t.Fatalf("start: %v\nconsole:\n%s", err, console.String())
			}
			defer s.Close()
			t.Logf("%s: guest up in %.1fs under %s", mode, s.BootTime.Seconds(), s.Accel)
			guestIP := s.GuestIP(false)
			if !strings.Contains(s.Ready, "ip="+guestIP.String()) {
				t.Fatalf("guest did not take its address from the hint: %q", s.Ready)
			}

			pingGuest(t, guestIP, 20*time.Second)
			assertHTTP(t, fmt.Sprintf("http://%s:8080/", guestIP), "vmcni-guest-ok")
			assertEcho(t, fmt.Sprintf("%s:7777", guestIP))
			for _, marker := range []string{"VMCNI-PROBE-OK", "VMCNI-PROBETCP-OK"} {
				wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
				if _, err := s.WaitConsole(wctx, marker); err != nil {
					t.Fatalf("guest → host: %v", err)
				}
				wcancel()
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			testutil.AssertSameHost(t, before, n.dirs, n.bridge)
		})
	}
}

// vmBridgeNet is a vm-bridge network of one mode on its own bridge (the
// host is its gateway), with its state and IPAM in a test directory.
type vmBridgeNet struct {
	conf            []byte
	dirs            []string // state and IPAM directories
	bridge, gateway string
}

// newVMBridgeNet returns the network of mode on subnet 10.199.<subnet>.0/24;
// the bridge is removed when the test ends.
func newVMBridgeNet(t *testing.T, mode string, subnet int) vmBridgeNet {
	t.Helper()
	dir := t.TempDir()
	n := vmBridgeNet{
		bridge:  testutil.UniqueName("vmctvm"),
		gateway: fmt.Sprintf("10.199.%d.1", subnet),
		dirs:    []string{filepath.Join(dir, "state"), filepath.Join(dir, "ipam")},
	}
	t.Cleanup(func() { _ = link.DeleteByName(n.bridge) })
	n.conf, _ = json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "vmct-e2e-" + mode,
		"plugins": []map[string]any{{
			"type": "vm-bridge", "mode": mode, "bridge": n.bridge, "isGateway": true,
			"stateDir": n.dirs[0],
			"ipam": map[string]any{
				"type": "host-local", "dataDir": n.dirs[1],
				"ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.199.%d.0/24", subnet)}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
			},
		}},
	})
	return n
}

// pingGuest fails t unless ip answers the host's ping within timeout.
func pingGuest(t *testing.T, ip net.IP, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rtt, err := launcher.Ping(ctx, ip)
	if err != nil {
		t.Fatalf("host → guest ping: %v", err)
	}
	t.Logf("host → guest ping %v", rtt)
}

func assertHTTP(t *testing.T, url, want string) {
	t.Helper()
	assertGet(t, url, func(body []byte) error {
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("body %q lacks %q", body, want)
		}
		return nil
	})
}

// assertGet fails t unless a GET of url (5 tries) returns a body check
// accepts.
func assertGet(t *testing.T, url string, check func(body []byte) error) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err = errors.Join(rerr, check(body)); err == nil {
				return
			}
		}
		lastErr = err
		time.Sleep(time.Second)
	}
	t.Fatalf("host → guest HTTP %s: %v", url, lastErr)
}

func assertEcho(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("host → guest TCP %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "vmcni-guest-ok") {
		t.Fatalf("host → guest TCP %s: %q %v", addr, buf[:n], err)
	}
}
