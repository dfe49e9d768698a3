package fakevpp_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"

	"github.com/vmcni/vmcni/vpp/fakevpp"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

const timeout = 2 * time.Second

// serve serves v on a socket in a temp directory until the test ends.
func serve(t *testing.T, v *fakevpp.VPP) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	stop, err := v.ServeSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return path
}

// dial connects through the production connector (govpp's socketclient).
func dial(t *testing.T, path string, features ...vppapi.Feature) *vppapi.Client {
	t.Helper()
	c, err := vppapi.Dial(context.Background(), vppapi.SocketConnector, path, timeout, features...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// TestSocketRoundTrip creates, dumps, fails and deletes through the real
// socket client and finds the model back as it started.
func TestSocketRoundTrip(t *testing.T) {
	v := fakevpp.New()
	c := dial(t, serve(t, v), vppapi.FeatureVhostUser, vppapi.FeatureL2)
	defer c.Close()

	if err := c.AddBridgeDomain(10, "bd10"); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	idx, err := c.CreateVhostUser(vppapi.VhostUser{Socket: "/run/x/vhu.sock", Server: true, MAC: mac, Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return c.SetMTU(idx, 1400) },
		func() error { return c.SetL2Bridge(idx, 10) },
		func() error { return c.SetAdminUp(idx, true) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ifs, err := c.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 2 || ifs[0].Name != "local0" || ifs[1].Index != idx || ifs[1].Tag != "t1" ||
		ifs[1].MTU != 1400 || !ifs[1].AdminUp || ifs[1].MAC.String() != mac.String() {
		t.Fatalf("interfaces = %+v", ifs)
	}
	if model := v.Interfaces(); len(model) != 2 || model[1].Socket != "/run/x/vhu.sock" || !model[1].IsServer {
		t.Errorf("model interfaces = %+v", model)
	}
	bd, err := c.BridgeDomain(10)
	if err != nil || bd == nil || bd.Tag != "bd10" || !slices.Equal(bd.Members, []uint32{idx}) {
		t.Fatalf("bridge domain 10 = %+v, %v", bd, err)
	}
	if bd, err = c.BridgeDomain(11); err != nil || bd != nil {
		t.Fatalf("bridge domain 11 = %+v, %v", bd, err)
	}

	// A refused request is VPP's retval, and the connection stays usable.
	v.FailNext("sw_interface_set_flags", int32(api.INVALID_VALUE))
	if err := c.SetAdminUp(idx, false); !errors.Is(err, api.INVALID_VALUE) || !vppapi.IsRetval(err) {
		t.Fatalf("forced retval: %v", err)
	}
	if err := c.DeleteBridgeDomain(10); !errors.Is(err, api.BD_IN_USE) {
		t.Fatalf("delete a bridge domain in use: %v", err)
	}

	if err := c.DeleteVhostUser(idx); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteBridgeDomain(10); err != nil {
		t.Fatal(err)
	}
	if ifs := v.Interfaces(); len(ifs) != 1 || ifs[0].Name != "local0" {
		t.Errorf("interfaces left: %+v", ifs)
	}
	if bds := v.BridgeDomains(); len(bds) != 0 {
		t.Errorf("bridge domains left: %+v", bds)
	}
	want := []string{
		"bridge_domain_add_del_v2", "create_vhost_user_if_v2", "sw_interface_set_mtu", "sw_interface_set_l2_bridge",
		"sw_interface_set_flags", "sw_interface_dump", "bridge_domain_dump", "bridge_domain_dump",
		"sw_interface_set_flags", "bridge_domain_add_del_v2", "delete_vhost_user_if", "bridge_domain_add_del_v2",
	}
	if got := v.Names(); !slices.Equal(got, want) {
		t.Errorf("requests\n got %v\nwant %v", got, want)
	}
	if u := v.Unknown(); len(u) != 0 {
		t.Errorf("unknown requests: %v", u)
	}
	if n := v.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}
}

// TestSocketConcurrentClients: clients on their own connections at once,
// as concurrent plugin processes are.
func TestSocketConcurrentClients(t *testing.T) {
	v := fakevpp.New()
	path := serve(t, v)
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- memifRoundTrip(path, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s := v.MemifSockets(); len(s) != 1 || s[0] != fakevpp.DefaultMemifSocket {
		t.Errorf("memif sockets left: %v", s)
	}
	if ifs := v.Interfaces(); len(ifs) != 1 {
		t.Errorf("interfaces left: %+v", ifs)
	}
	if got := v.Connections(); got != n {
		t.Errorf("Connections() = %d, want %d", got, n)
	}
}

func memifRoundTrip(path string, i int) error {
	c, err := vppapi.Dial(context.Background(), vppapi.SocketConnector, path, timeout, vppapi.FeatureMemif)
	if err != nil {
		return err
	}
	defer c.Close()
	sock := fmt.Sprintf("/run/x/%d/memif.sock", i)
	sid, err := c.AddMemifSocket(sock)
	if err != nil {
		return err
	}
	idx, err := c.CreateMemif(vppapi.Memif{Master: true, SocketID: sid, RxQueues: 1, TxQueues: 1, RingSize: 1024, BufferSize: 2048})
	if err != nil {
		return err
	}
	socks, err := c.MemifSockets()
	if err != nil {
		return err
	}
	if socks[sid] != sock {
		return fmt.Errorf("client %d: memif sockets %v lack %d=%s", i, socks, sid, sock)
	}
	memifs, err := c.Memifs()
	if err != nil {
		return err
	}
	if !slices.Contains(memifs, vppapi.MemifSocketUse{Index: idx, SocketID: sid}) {
		return fmt.Errorf("client %d: memifs %v lack %d", i, memifs, idx)
	}
	if err := c.DeleteMemif(idx); err != nil {
		return err
	}
	return c.DeleteMemifSocket(sid)
}

// TestSocketIncompatible: messages made incompatible are left out of the
// message table, so Dial fails naming them before any request; a client
// that does not need them is unaffected.
func TestSocketIncompatible(t *testing.T) {
	v := fakevpp.New()
	path := serve(t, v)
	v.MakeIncompatible("memif_create_v2", "memif_dump")
	_, err := vppapi.Dial(context.Background(), vppapi.SocketConnector, path, timeout, vppapi.FeatureMemif)
	var inc *vppapi.IncompatibleError
	if !errors.As(err, &inc) {
		t.Fatalf("Dial: %v, want an IncompatibleError", err)
	}
	if len(inc.Messages) != 2 || !strings.HasPrefix(inc.Messages[0], "memif_create_v2_") ||
		!strings.HasPrefix(inc.Messages[1], "memif_dump_") {
		t.Errorf("incompatible messages %v", inc.Messages)
	}
	if got := v.Names(); len(got) != 0 {
		t.Errorf("requests sent to an incompatible VPP: %v", got)
	}
	c := dial(t, path, vppapi.FeatureVhostUser)
	defer c.Close()
	if _, err := c.Interfaces(); err != nil {
		t.Fatal(err)
	}
}

func frame(data []byte) []byte {
	h := make([]byte, 16, 16+len(data))
	binary.BigEndian.PutUint32(h[8:12], uint32(len(data)))
	return append(h, data...)
}

func sockclntCreate(t *testing.T) []byte {
	t.Helper()
	data, err := codec.DefaultCodec.EncodeMsg(&memclnt.SockclntCreate{Name: "raw"}, 15)
	if err != nil {
		t.Fatal(err)
	}
	return frame(data)
}

// TestSocketGarbage: a connection sending garbage is closed, the fake does
// not panic and keeps serving others.
func TestSocketGarbage(t *testing.T) {
	v := fakevpp.New()
	path := serve(t, v)
	cases := map[string][]byte{
		"random bytes":          []byte(strings.Repeat("\xde\xad\xbe\xef", 20)),
		"huge length":           {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"short message":         frame([]byte{0, 15, 0}),
		"not sockclnt_create":   frame(make([]byte, 20)),
		"undecodable create":    frame([]byte{0, 15, 0, 0, 0, 0, 0, 0, 0, 0}),
		"unknown ID after open": append(sockclntCreate(t), frame([]byte{0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 1})...),
		"create twice":          append(sockclntCreate(t), sockclntCreate(t)...),
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(garbage); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(timeout))
			// Everything up to the garbage may be answered; then EOF.
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the fake kept the connection open")
			}
		})
	}
	// A client closing in the middle of a frame.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(sockclntCreate(t)[:20])
	_ = c.Close()

	client := dial(t, path)
	defer client.Close()
	if _, err := client.Interfaces(); err != nil {
		t.Fatal(err)
	}
}

// TestSocketStop closes open connections and removes the socket file.
func TestSocketStop(t *testing.T) {
	v := fakevpp.New()
	path := filepath.Join(t.TempDir(), "api.sock")
	stop, err := v.ServeSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.ServeSocket(path); err == nil {
		t.Error("a second ServeSocket on the same path succeeded")
	}
	raw, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Registered, so the fake is serving it.
	if _, err := raw.Write(sockclntCreate(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(raw, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	if v.Connections() != 1 {
		t.Fatalf("Connections() = %d, want 1", v.Connections())
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("stop hangs on an idle connection")
	}
	stop()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after stop: %v", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(timeout))
	if _, err := io.Copy(io.Discard, raw); err != nil { // the rest of the reply, then EOF
		t.Errorf("read on a stopped fake: %v, want EOF", err)
	}
}
