package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/cnm-adapter/api"
)

// fakeDriver implements the methods the tests call; any other method hits
// the nil embedded interface and panics, which the server must survive.
type fakeDriver struct {
	api.NetworkDriver
	api.IPAMDriver
	gotCreate *api.CreateNetworkRequest
	joinErr   error
	slow      time.Duration
}

func (f *fakeDriver) CreateNetwork(_ context.Context, req *api.CreateNetworkRequest) error {
	f.gotCreate = req
	return nil
}

func (f *fakeDriver) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	if f.slow > 0 {
		select {
		case <-time.After(f.slow):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.joinErr != nil {
		return nil, f.joinErr
	}
	return &api.JoinResponse{InterfaceName: &api.InterfaceName{SrcName: "vmctx", DstPrefix: "eth"}, Gateway: "10.0.0.1", DisableGatewayService: true}, nil
}

func (f *fakeDriver) RequestPool(_ context.Context, req *api.RequestPoolRequest) (*api.RequestPoolResponse, error) {
	return &api.RequestPoolResponse{PoolID: "p1", Pool: req.Pool}, nil
}

// call posts body to path on a unix-socket server and decodes the reply.
func call(t *testing.T, c *http.Client, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://plugin"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", api.ContentType)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentType {
		t.Errorf("%s: content type %q", path, ct)
	}
	if out != nil {
		if err = json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s: decode reply: %v", path, err)
		}
	}
	return resp.StatusCode
}

func start(t *testing.T, f *fakeDriver, opts ...Option) *http.Client {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vmct-srv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "p.sock")
	l, err := Listen(sock, -1)
	if err != nil {
		t.Fatal(err)
	}
	if fi, serr := os.Stat(sock); serr != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), serr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(f, f, opts...).Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

func TestActivateAndTypedRequests(t *testing.T) {
	f := &fakeDriver{}
	c := start(t, f)
	var act api.ActivateResponse
	if code := call(t, c, "POST", "/Plugin.Activate", "", &act); code != 200 ||
		strings.Join(act.Implements, ",") != "NetworkDriver,IpamDriver" {
		t.Fatalf("activate: %d %+v", code, act)
	}
	body := `{"NetworkID":"n1","Options":{"com.docker.network.generic":{"mode":"macvtap"}},
	  "IPv4Data":[{"AddressSpace":"a","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}]}`
	var r api.Response
	if code := call(t, c, "POST", "/NetworkDriver.CreateNetwork", body, &r); code != 200 || r.Err != "" {
		t.Fatalf("create: %d %+v", code, r)
	}
	g := f.gotCreate
	if g.NetworkID != "n1" || g.IPv4Data[0].Gateway != "10.1.0.1/24" ||
		g.Options[api.GenericOption].(map[string]any)["mode"] != "macvtap" {
		t.Fatalf("decoded request: %+v", g)
	}
	var j api.JoinResponse
	if code := call(t, c, "POST", "/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1"}`, &j); code != 200 ||
		j.InterfaceName.SrcName != "vmctx" || j.Gateway != "10.0.0.1" || !j.DisableGatewayService {
		t.Fatalf("join: %d %+v", code, j)
	}
	var p api.RequestPoolResponse
	if code := call(t, c, "POST", "/IpamDriver.RequestPool", `{"Pool":"10.2.0.0/16"}`, &p); code != 200 || p.PoolID != "p1" {
		t.Fatalf("pool: %d %+v", code, p)
	}
}

func TestErrorsNeverCrash(t *testing.T) {
	f := &fakeDriver{joinErr: errors.New(`join endpoint "e1": boom`)}
	c := start(t, f, WithRequestTimeout(200*time.Millisecond))
	cases := []struct {
		name, method, path, body string
		code                     int
		errHas                   string
	}{
		{"driver error", "POST", "/NetworkDriver.Join", `{"EndpointID":"e1"}`, 500, `join endpoint "e1": boom`},
		{"malformed json", "POST", "/NetworkDriver.Join", `{"EndpointID":`, 400, "decode request"},
		{"empty body (Docker's retry)", "POST", "/IpamDriver.RequestAddress", ``, 400, "empty request body"},
		{"wrong types", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":5}`, 400, "decode request"},
		{"unknown method", "POST", "/NetworkDriver.Frobnicate", `{}`, 404, "unknown method"},
		{"not POST", "GET", "/NetworkDriver.Join", ``, 405, "use POST"},
		{"unimplemented panics", "POST", "/NetworkDriver.Leave", `{}`, 500, "internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r api.Response
			code := call(t, c, tc.method, tc.path, tc.body, &r)
			if code != tc.code || !strings.Contains(r.Err, tc.errHas) {
				t.Fatalf("got %d %q, want %d containing %q", code, r.Err, tc.code, tc.errHas)
			}
		})
	}
	f.joinErr, f.slow = nil, 5*time.Second
	var r api.Response
	if code := call(t, c, "POST", "/NetworkDriver.Join", `{}`, &r); code != 500 || !strings.Contains(r.Err, "timed out") {
		t.Fatalf("slow request: %d %q", code, r.Err)
	}
	// still serving
	if code := call(t, c, "POST", "/Plugin.Activate", "", nil); code != 200 {
		t.Fatalf("server dead after errors: %d", code)
	}
	big := bytes.Repeat([]byte("x"), maxBody+10)
	if code := call(t, c, "POST", "/NetworkDriver.Join", string(big), nil); code != 400 {
		t.Fatalf("oversized body: %d", code)
	}
}

// TestListenSocketMode: under umask 000 too, the socket appears with mode
// 0660 (never with the umask's), no private directory is left next to it
// (nor one a daemon killed in Listen left), a stale socket is replaced,
// and Close removes it.
func TestListenSocketMode(t *testing.T) {
	old := syscall.Umask(0) // the worst umask: the socket must still never be 0777
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "vmcni.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // stale
		t.Fatal(err)
	}
	// what a daemon killed inside Listen leaves: its private directory
	if err := os.MkdirAll(filepath.Join(dir, ".vmcni.sock.listen-123", "s"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v, %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left next to the socket: %v", entries)
	}
	if err = l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err = os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}
