package launcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vmnet/launcher"
)

// bigBody is what the host serves the guest: 64 KiB, so TCP sends
// full-size segments.
var bigBody = strings.Repeat("h", 64<<10)

// TestGuestDualStackMTUQueues boots the test guest on a vm-bridge
// attachment with an IPv4 and an IPv6 address, a 1450-byte MTU (a pod on
// an overlay), a route carrying a CNI 1.1 MTU and a multiqueue device,
// in tcfilter (tap, 2 queues) and macvtap (4 queues) mode. The guest
// takes everything from the hint: both addresses and default routes, the
// MTU, the route's MTU, and as many queue pairs as the device has. Ping
// and ping6 answer both ways, and 64 KiB cross in full-size segments both
// ways over IPv4 and IPv6 (a guest left at 1500 would stall there). The
// host is as before afterwards.
func TestGuestDualStackMTUQueues(t *testing.T) {
	testutil.RequiresRoot(t)
	kernel, initrd := guestImage(t)
	bin := testutil.Binaries(t)
	port := serve(t, "tcp", bigBody) // IPv4 and IPv6
	for i, c := range []struct {
		mode   string
		queues int
	}{{"tcfilter", 2}, {"macvtap", 4}} {
		t.Run(c.mode, func(t *testing.T) {
			n := newDualStackNet(t, c.mode, 40+i, c.queues)
			routedPort, mss := 7000+i, make(chan int, 4)
			before := testutil.TakeSnapshot(t, n.dirs, n.bridge)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var console strings.Builder
			s, err := launcher.Start(ctx, launcher.Options{
				Conflist: n.conf, CNIPath: []string{bin}, Kernel: kernel, Initrd: initrd,
				Accel: "auto", BootTimeout: 90 * time.Second, Console: &console, CPUs: c.queues,
				ProbeGateway: true, Probes: []string{n.gateway6},
				ProbeTCP:  fmt.Sprintf("%s:%d", n.gateway, port),
				ProbeTCPs: []string{fmt.Sprintf("[%s]:%d", n.gateway6, port), fmt.Sprintf("%s:%d", routedAddr, routedPort)},
				ProbeWait: 40 * time.Second,
			})
			if err != nil {
				t.Fatalf("start: %v\nconsole:\n%s", err, console.String())
			}
			defer s.Close()
			// an address behind the route with an MTU, on the host
			serveMSS(t, n.bridge, routedPort, mss)
			v4, v6 := s.GuestIP(false), s.GuestIP(true)
			if v4 == nil || v6 == nil {
				t.Fatalf("plan has no dual-stack guest: %+v", s.Plan.NICs)
			}
			for _, want := range []string{v4.String() + "/", v6.String() + "/", "mtu=1450", fmt.Sprintf("queues=%d", c.queues)} {
				if !strings.Contains(s.Ready, want) {
					t.Fatalf("guest READY %q lacks %q", s.Ready, want)
				}
			}
			if !strings.Contains(console.String(), "VMCNI-GUEST-ROUTE 10.251.0.0/16 via "+n.gateway) {
				t.Fatalf("the guest has no route to 10.251.0.0/16:\n%s", console.String())
			}
			pingGuest(t, v4, 20*time.Second)
			pingGuest(t, v6, 20*time.Second)
			for _, url := range []string{
				fmt.Sprintf("http://%s:8080/big", v4), fmt.Sprintf("http://[%s]:8080/big", v6),
			} {
				assertBig(t, url)
			}
			for _, marker := range []string{
				"VMCNI-PROBE-OK " + n.gateway, "VMCNI-PROBE-OK " + n.gateway6,
				fmt.Sprintf("VMCNI-PROBETCP-OK %s:%d", n.gateway, port),
				fmt.Sprintf("VMCNI-PROBETCP-OK [%s]:%d", n.gateway6, port),
				fmt.Sprintf("VMCNI-PROBETCP-OK %s:%d", routedAddr, routedPort),
			} {
				wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
				if _, err := s.WaitConsole(wctx, marker); err != nil {
					wcancel()
					t.Fatalf("guest → host %q: %v\nconsole:\n%s", marker, err, console.String())
				}
				wcancel()
			}
			// The guest announced the MSS of the route's 1400-byte MTU, not
			// of its NIC's 1450 (1360 and 1410 without options).
			if got := <-mss; got > 1400-40 {
				t.Fatalf("TCP MSS toward the route with MTU 1400: %d, want <= 1360", got)
			} else {
				t.Logf("TCP MSS toward the route with MTU 1400: %d", got)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			testutil.AssertSameHost(t, before, n.dirs, n.bridge)
		})
	}
}

// routedAddr is a host address in 10.251.0.0/16, the destination of the
// route with an MTU.
const routedAddr = "10.251.0.1"

// serveMSS puts routedAddr on the test's bridge and answers HTTP on
// routedAddr:port, sending each connection's MSS to mss: the sender's
// segment size, bounded by what the guest announced.
func serveMSS(t *testing.T, bridge string, port int, mss chan<- int) {
	t.Helper()
	br, err := link.ByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(routedAddr + "/32")
	if err := netlink.AddrAdd(br, addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.AddrDel(br, addr) })
	ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", routedAddr, port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if raw, err := conn.(*net.TCPConn).SyscallConn(); err == nil {
				_ = raw.Control(func(fd uintptr) {
					if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); err == nil {
						select {
						case mss <- v:
						default:
						}
					}
				})
			}
			_, _ = io.WriteString(conn, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
			conn.Close()
		}
	}()
}

// assertBig fails t unless url returns the guest's 64 KiB file.
func assertBig(t *testing.T, url string) {
	t.Helper()
	assertGet(t, url, func(body []byte) error {
		if len(body) != 64<<10 {
			return fmt.Errorf("%d bytes, want 64 KiB", len(body))
		}
		return nil
	})
}

// dualStackNet is a vm-bridge network with 10.199.<subnet>.0/24 and
// fd00:199:<subnet>::/64, MTU 1450, queues, and a route with an MTU.
type dualStackNet struct {
	vmBridgeNet
	gateway6 string
}

func newDualStackNet(t *testing.T, mode string, subnet, queues int) dualStackNet {
	t.Helper()
	dir := t.TempDir()
	n := dualStackNet{vmBridgeNet: vmBridgeNet{
		bridge:  testutil.UniqueName("vmctds"),
		gateway: fmt.Sprintf("10.199.%d.1", subnet),
		dirs:    []string{filepath.Join(dir, "state"), filepath.Join(dir, "ipam")},
	}, gateway6: fmt.Sprintf("fd00:199:%d::1", subnet)}
	t.Cleanup(func() { _ = link.DeleteByName(n.bridge) })
	n.conf, _ = json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "vmct-ds-" + mode,
		"plugins": []map[string]any{{
			"type": "vm-bridge", "mode": mode, "bridge": n.bridge, "isGateway": true,
			"mtu": 1450, "queues": queues, "stateDir": n.dirs[0],
			"ipam": map[string]any{
				"type": "host-local", "dataDir": n.dirs[1],
				"ranges": [][]map[string]string{
					{{"subnet": fmt.Sprintf("10.199.%d.0/24", subnet)}},
					{{"subnet": fmt.Sprintf("fd00:199:%d::/64", subnet)}},
				},
				"routes": []map[string]any{
					{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
					{"dst": "10.251.0.0/16", "gw": n.gateway, "mtu": 1400},
				},
			},
		}},
	})
	return n
}
