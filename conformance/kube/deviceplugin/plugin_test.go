package deviceplugin

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	testResource = "vmcni.io/sriov_vf"
	testEnv      = "PCIDEVICE_VMCNI_IO_SRIOV_VF"
	// wait bounds every wait for the plugin; it polls every testPoll.
	wait     = 5 * time.Second
	testPoll = 20 * time.Millisecond
)

// testVFs are VF addresses as sriovsim names them (sriovsim.VFAddr).
var testVFs = []string{"0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"}

func testOptions(dir string) Options {
	return Options{
		ResourceName: testResource,
		Devices:      testVFs,
		KubeletDir:   dir,
		PollInterval: testPoll,
		StartTimeout: wait,
	}
}

// checkGoroutines returns a check that no goroutine started since remains
// (after a grace period: gRPC's close paths finish asynchronously).
func checkGoroutines(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(wait)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines, %d before the test:\n%s",
					runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %s", what, wait)
		panic("unreachable")
	}
}

func expectNone[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

func checkRegistration(t *testing.T, k *fakeKubelet) pluginapi.DevicePluginClient {
	t.Helper()
	req := receive(t, k.reqs, "registration")
	if req.Version != pluginapi.Version || req.Endpoint != SocketName(testResource) || req.ResourceName != testResource {
		t.Errorf("registration = {Version %q, Endpoint %q, ResourceName %q}, want {%q, %q, %q}",
			req.Version, req.Endpoint, req.ResourceName, pluginapi.Version, SocketName(testResource), testResource)
	}
	var got []string
	for _, d := range receive(t, k.lists, "ListAndWatch response") {
		if d.Health != pluginapi.Healthy {
			t.Errorf("device %q is %q, want %q", d.ID, d.Health, pluginapi.Healthy)
		}
		got = append(got, d.ID)
	}
	if !reflect.DeepEqual(got, testVFs) {
		t.Errorf("ListAndWatch listed %q, want %q", got, testVFs)
	}
	return receive(t, k.plugins, "plugin client")
}

func allocate(t *testing.T, c pluginapi.DevicePluginClient, reqs ...[]string) []map[string]string {
	t.Helper()
	req := &pluginapi.AllocateRequest{}
	for _, ids := range reqs {
		req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIDs: ids})
	}
	resp, err := c.Allocate(context.Background(), req)
	if err != nil {
		t.Fatalf("Allocate(%q): %v", reqs, err)
	}
	var envs []map[string]string
	for _, cr := range resp.ContainerResponses {
		if len(cr.Devices) != 0 || len(cr.Mounts) != 0 || len(cr.Annotations) != 0 || len(cr.CDIDevices) != 0 {
			t.Errorf("Allocate answered more than an environment: %v", cr)
		}
		envs = append(envs, cr.Envs)
	}
	return envs
}

// stopAll stops p (twice: the second Stop must give the same answer),
// checks its socket is gone, stops k, and checks no goroutine is left.
func stopAll(t *testing.T, p *Plugin, k *fakeKubelet, checkLeaks func()) {
	t.Helper()
	for i := range 2 {
		if err := p.Stop(); err != nil {
			t.Errorf("Stop #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(p.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Stop: %v, want it gone", err)
	}
	k.stop()
	checkLeaks()
}

// started is a plugin registered with a fake kubelet in a new directory.
type started struct {
	dir        string
	k          *fakeKubelet
	p          *Plugin
	c          pluginapi.DevicePluginClient // the fake kubelet's client to p
	checkLeaks func()
}

func start(t *testing.T) started {
	t.Helper()
	s := started{checkLeaks: checkGoroutines(t), dir: t.TempDir()}
	s.k = startKubelet(t, s.dir, true)
	var err error
	if s.p, err = Start(context.Background(), testOptions(s.dir)); err != nil {
		t.Fatal(err)
	}
	s.c = checkRegistration(t, s.k)
	return s
}

func TestPlugin(t *testing.T) {
	s := start(t)
	dir, k, p, c, checkLeaks := s.dir, s.k, s.p, s.c, s.checkLeaks
	if want := filepath.Join(dir, "vmcni-vmcni.io_sriov_vf.sock"); p.SocketPath() != want {
		t.Errorf("SocketPath() = %q, want %q", p.SocketPath(), want)
	}

	ctx := context.Background()
	opts, err := c.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil || opts.PreStartRequired || opts.GetPreferredAllocationAvailable {
		t.Errorf("GetDevicePluginOptions = %v, %v; want no options", opts, err)
	}
	if _, err := c.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIDs: testVFs[:1]}); err != nil {
		t.Errorf("PreStartContainer: %v", err)
	}
	pref, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs:   []string{testVFs[3], testVFs[1], testVFs[2]},
			MustIncludeDeviceIDs: []string{testVFs[1]},
			AllocationSize:       2,
		}},
	})
	if err != nil || len(pref.ContainerResponses) != 1 ||
		!reflect.DeepEqual(pref.ContainerResponses[0].DeviceIDs, []string{testVFs[1], testVFs[3]}) {
		t.Errorf("GetPreferredAllocation = %v, %v; want [%q %q]", pref, err, testVFs[1], testVFs[3])
	}

	envs := allocate(t, c, testVFs[1:2], testVFs[2:4])
	want := []map[string]string{
		{testEnv: testVFs[1]},
		{testEnv: testVFs[2] + "," + testVFs[3]},
	}
	if !reflect.DeepEqual(envs, want) {
		t.Errorf("Allocate envs = %v, want %v", envs, want)
	}
	_, err = c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{
		DevicesIDs: []string{"0000:3b:02.9"},
	}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Allocate of an unknown device: %v, want code %v", err, codes.InvalidArgument)
	}
	if got, want := p.Allocations(), [][]string{testVFs[1:2], testVFs[2:4]}; !reflect.DeepEqual(got, want) {
		t.Errorf("Allocations() = %q, want %q", got, want)
	}

	expectNone(t, k.reqs, 10*testPoll, "registration without a kubelet restart")
	stopAll(t, p, k, checkLeaks)
}

func TestReregister(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool // the kubelet restarts
		cleanup bool // the plugin's socket is deleted, as a restarting kubelet does
	}{
		{"restart", true, true},
		{"restart keeps socket", true, false},
		{"socket deleted", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			k, p := s.k, s.p

			start := time.Now()
			switch {
			case tc.restart:
				k.stop()
				k = startKubelet(t, s.dir, tc.cleanup)
			case tc.cleanup:
				if err := os.Remove(p.SocketPath()); err != nil {
					t.Fatal(err)
				}
			}
			c := checkRegistration(t, k)
			t.Logf("registered again after %s", time.Since(start))
			if envs := allocate(t, c, testVFs[:1]); !reflect.DeepEqual(envs, []map[string]string{{testEnv: testVFs[0]}}) {
				t.Errorf("Allocate after the restart: envs %v", envs)
			}
			expectNone(t, k.reqs, 10*testPoll, "second registration with the same kubelet")

			stopAll(t, p, k, s.checkLeaks)
		})
	}
}

// The plugin may start before the kubelet, which then deletes its socket.
func TestStartBeforeKubelet(t *testing.T) {
	checkLeaks := checkGoroutines(t)
	dir := t.TempDir()
	type result struct {
		p   *Plugin
		err error
	}
	res := make(chan result, 1)
	go func() {
		p, err := Start(context.Background(), testOptions(dir))
		res <- result{p, err}
	}()
	deadline := time.Now().Add(wait)
	for _, err := os.Stat(filepath.Join(dir, SocketName(testResource))); err != nil; _, err = os.Stat(filepath.Join(dir, SocketName(testResource))) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin socket: %v", err)
		}
		time.Sleep(testPoll)
	}
	k := startKubelet(t, dir, true)
	checkRegistration(t, k)
	r := receive(t, res, "Start result")
	if r.err != nil {
		t.Fatal(r.err)
	}
	stopAll(t, r.p, k, checkLeaks)
}

// Start gives up after StartTimeout without a kubelet, and the end of its
// ctx stops a started plugin like Stop.
func TestStartTimeoutAndContext(t *testing.T) {
	checkLeaks := checkGoroutines(t)
	dir := t.TempDir()
	o := testOptions(dir)
	o.StartTimeout = 10 * testPoll
	_, err := Start(context.Background(), o)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "kubelet.sock") {
		t.Errorf("Start without a kubelet: %v, want a missing kubelet.sock", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}

	k := startKubelet(t, dir, true)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	checkRegistration(t, k)
	cancel()
	receive(t, p.done, "shutdown at the end of ctx")
	if _, err := os.Stat(p.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after ctx ended: %v, want it gone", err)
	}
	stopAll(t, p, k, checkLeaks)
}

func TestSocketInTheWay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName(testResource))
	k := startKubelet(t, dir, true)

	// A live socket belongs to another plugin: Start refuses to take it.
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), testOptions(dir)); err == nil || !strings.Contains(err.Error(), "another process serves") {
		t.Errorf("Start with a live socket in the way: %v", err)
	}
	// A dead one is stale: Start replaces it.
	live.(*net.UnixListener).SetUnlinkOnClose(false)
	live.Close()
	p, err := Start(context.Background(), testOptions(dir))
	if err != nil {
		t.Fatalf("Start over a stale socket: %v", err)
	}
	checkRegistration(t, k)
	if err := p.Stop(); err != nil {
		t.Error(err)
	}

	// Anything else is not the plugin's to remove.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), testOptions(dir)); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Start with a file in the way: %v", err)
	}
}
