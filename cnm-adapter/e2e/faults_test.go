package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/cnm-adapter/internal/hostcheck"
	"github.com/vmcni/vmcni/cnm-adapter/state"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
)

// probeEnv makes the test binary the socket prober (TestMain).
const probeEnv = "VMCT_PROBE_SOCKET"

// probe dials the unix socket at sock until SIGTERM: it prints
// "CONNECTED" and returns 3 the first time a connection is accepted,
// else prints the number of refused attempts and returns 0.
func probe(sock string) int {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	for attempts := 0; ; attempts++ {
		select {
		case <-stop:
			fmt.Printf("refused %d\n", attempts)
			return 0
		default:
		}
		if c, err := net.DialTimeout("unix", sock, 100*time.Millisecond); err == nil {
			_ = c.Close()
			fmt.Println("CONNECTED")
			return 3
		}
		time.Sleep(time.Millisecond)
	}
}

// startProber runs the prober as nobody (uid and gid 65534, no
// supplementary group) against sock, with the socket's directory made
// traversable for the test (its mode is restored after): only the
// socket's own mode and group stand between nobody and the daemon. The
// returned func stops it and returns its report.
func (e *env) startProber(sock string) func() string {
	t := e.t
	dir := filepath.Dir(sock)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err = os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, fi.Mode().Perm()) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.dir, "prober")
	data, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(e.dir, 0o711)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{probeEnv + "=" + sock}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if err = cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		return strings.TrimSpace(out.String())
	}
	t.Cleanup(func() { stop() })
	return stop
}

// cycle starts the stopped container name (on netName) and stops it:
// RequestAddress, CreateEndpoint, Join, then Leave, DeleteEndpoint,
// ReleaseAddress. A failed start is tolerated (the adapter may have been
// killed under it); the stop is retried until Docker reports the
// container stopped. It returns the docker commands that failed.
func (e *env) cycle(name string) (failed int, err error) {
	if out, serr := e.dockerErr("start", name); serr != nil {
		e.debugf("start %s: %v: %s", name, serr, out)
		failed++
	}
	for range 10 {
		out, serr := e.dockerErr("stop", "-t", "0", name)
		if serr == nil {
			if running, _ := e.dockerErr("inspect", "-f", "{{.State.Running}}", name); running == "false" {
				return failed, nil
			}
		}
		e.debugf("stop %s: %v: %s", name, serr, out)
		failed++
		err = fmt.Errorf("stop %s: %w: %s", name, serr, out)
		time.Sleep(200 * time.Millisecond)
	}
	return failed, err
}

func (e *env) debugf(format string, args ...any) {
	if os.Getenv("VMCT_DEBUG") != "" {
		e.t.Logf(time.Now().Format("15:04:05.000 ")+format, args...)
	}
}

// TestJoinLeaveUnderSIGKILL: 500 Join/Leave cycles (docker network
// disconnect + connect of running containers, two at a time, with the
// adapter's IPAM) while the adapter, started under umask 000, is SIGKILLed
// at random moments (at least 50 times) and restarted; a prober running as
// nobody dials its socket the whole time. Then, after a reconciliation:
// the adapter's endpoints are exactly Docker's, its leases and
// host-local's are exactly the containers' addresses, no transfer netns is
// left, the bridge holds one port per container and every container
// reaches the gateway; after rm and network rm the host, the plugin state,
// the leases and the adapter's state are as before, and the prober never
// got a connection.
func TestJoinLeaveUnderSIGKILL(t *testing.T) {
	e := newEnv(t)
	image := e.importImage()
	pluginDir := "/run/docker/plugins"
	socketDirBefore := dirNames(t, pluginDir)
	e.umask000 = true
	e.startAdapter()
	stopProber := e.startProber(filepath.Join(pluginDir, e.name+".sock"))
	before := testutil.TakeSnapshot(t, e.dirs)

	netName, bridge, gateway := e.vmBridgeNetwork(214)
	containers := make([]string, 4)
	t.Cleanup(func() {
		for _, c := range containers {
			_, _ = e.dockerErr("rm", "-f", c)
		}
	})
	for i := range containers {
		containers[i] = fmt.Sprintf("%sc%d", e.name, i)
		e.docker("run", "-d", "--name", containers[i], "--network", netName, image, "sleep", "3600")
	}

	cycles, workers := 500, 2
	if testing.Short() {
		cycles = 60
	}
	done := make(chan error)
	var failedCmds atomic.Int64
	cycled := make([]string, workers)
	for w := range cycled {
		cycled[w] = fmt.Sprintf("%sw%d", e.name, w)
		e.docker("create", "--name", cycled[w], "--network", netName, image, "sleep", "3600")
	}
	t.Cleanup(func() {
		for _, c := range cycled {
			_, _ = e.dockerErr("rm", "-f", c)
		}
	})
	for w := range workers {
		go func() {
			for k := w; k < cycles; k += workers {
				failed, err := e.cycle(cycled[w])
				failedCmds.Add(int64(failed))
				done <- err
			}
			done <- errWorkerDone
		}()
	}
	kills, finished, running := 0, 0, workers
	nextKill := rand.IntN(12) + 1
	for running > 0 {
		err := <-done
		if errors.Is(err, errWorkerDone) {
			running--
			continue
		}
		if err != nil {
			t.Error(err)
		}
		finished++
		if finished >= nextKill && running == workers {
			nextKill = finished + rand.IntN(12) + 1
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond) // into the commands in flight
			e.killAdapter()
			kills++
			e.startAdapter()
		}
	}
	t.Logf("%d Join/Leave cycles (docker start + stop), %d SIGKILLs of the adapter; %d docker commands failed",
		cycles, kills, failedCmds.Load())
	if kills < 50 && !testing.Short() {
		t.Fatalf("only %d kills", kills)
	}

	t.Log("reconcile: restart the adapter once every record is older than --grace")
	time.Sleep(3500 * time.Millisecond)
	e.killAdapter()
	reconciled := strings.Count(e.adapterLog(), `"msg":"reconciled"`)
	e.startAdapter()
	for deadline := time.Now().Add(60 * time.Second); strings.Count(e.adapterLog(), `"msg":"reconciled"`) == reconciled; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reconciliation:\n%s", tail([]byte(e.adapterLog())))
		}
	}
	e.stopAdapter()
	e.assertMatchesDocker(containers, netName, bridge)
	e.startAdapter()
	for _, c := range containers {
		e.ping(c, gateway)
	}

	for _, c := range append(containers, cycled...) {
		e.docker("rm", "-f", c)
	}
	containers, cycled = nil, nil
	e.docker("network", "rm", netName)
	e.stopAdapter()
	srcNames := e.srcNamesInLog()
	hostcheck.AssertSameHost(t, before, e.dirs, func(name string) bool { return name == bridge || srcNames[name] })
	e.assertStateEmpty()
	if after := dirNames(t, pluginDir); !slices.Equal(after, socketDirBefore) {
		t.Fatalf("%s: %v, before the test %v", pluginDir, after, socketDirBefore)
	}
	report := stopProber()
	if !strings.HasPrefix(report, "refused ") {
		t.Fatalf("a process running as nobody reached the adapter's socket: %s", report)
	}
	t.Logf("prober (uid 65534): %s connection attempts, none accepted", strings.TrimPrefix(report, "refused "))
}

var errWorkerDone = errors.New("worker done")

func (e *env) adapterLog() string {
	data, _ := os.ReadFile(filepath.Join(e.dir, "adapter.log"))
	return string(data)
}

// srcNamesInLog is the host link name (SrcName: the name prefix and 11
// characters of the endpoint ID) of every endpoint the adapter logged as
// created: all the links the test's adapter may have made.
func (e *env) srcNamesInLog() map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(e.adapterLog()))
	for sc.Scan() {
		var line struct{ Msg, Endpoint string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "endpoint created" && len(line.Endpoint) >= 11 {
			names["vmct"+line.Endpoint[:11]] = true
		}
	}
	return names
}

// assertMatchesDocker checks the stopped adapter's state against Docker:
// the network's endpoints are exactly the containers' (all joined), the
// adapter's leases and host-local's lease files are exactly their
// addresses (host-local's own empty-lease window aside), no transfer netns
// is left and the bridge has one port per container.
func (e *env) assertMatchesDocker(containers []string, netName, bridge string) {
	t := e.t
	t.Helper()
	wantEPs, wantIPs := map[string]bool{}, map[string]bool{}
	for _, c := range containers {
		wantEPs[e.endpointField(c, netName, "EndpointID")] = true
		wantIPs[e.endpointField(c, netName, "IPAddress")] = true
	}
	st, err := state.Open(filepath.Join(e.stateDir, "state.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eps, err := st.Endpoints("")
	if err != nil {
		t.Fatal(err)
	}
	gotEPs := map[string]bool{}
	for _, ep := range eps {
		gotEPs[ep.ID] = true
		if ep.Phase != state.PhaseJoined {
			t.Errorf("endpoint %s is %s", ep.ID[:12], ep.Phase)
		}
	}
	pools, err := st.Pools()
	if err != nil || len(pools) != 1 {
		t.Fatalf("pools %+v, %v", pools, err)
	}
	leases, err := st.Leases(pools[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	gotLeases := map[string]bool{}
	for _, l := range leases {
		gotLeases[l.Address] = true
	}
	empty := testutil.RemoveEmptyLeases(t, e.dirs[1])
	files := map[string]bool{}
	_ = filepath.WalkDir(e.dirs[1], func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && net.ParseIP(d.Name()) != nil {
			files[d.Name()] = true
		}
		return nil
	})
	var transfer []string
	entries, _ := os.ReadDir(netns.NamedDir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "vmctx") {
			transfer = append(transfer, en.Name())
		}
	}
	ports := 0
	if br, lerr := netlink.LinkByName(bridge); lerr == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				ports++
			}
		}
	}
	t.Logf("after reconciliation: %d endpoints, %d adapter leases, %d host-local leases (%d empty ones host-local left, removed), %d bridge ports",
		len(gotEPs), len(gotLeases), len(files), empty, ports)
	switch {
	case !maps.Equal(gotEPs, wantEPs):
		t.Fatalf("adapter endpoints %v, Docker's %v", keys(gotEPs), keys(wantEPs))
	case !maps.Equal(gotLeases, wantIPs):
		t.Fatalf("adapter leases %v, containers' addresses %v", keys(gotLeases), keys(wantIPs))
	case !maps.Equal(files, wantIPs):
		t.Fatalf("host-local leases %v, containers' addresses %v", keys(files), keys(wantIPs))
	case len(transfer) > 0:
		t.Fatalf("transfer netns left: %v", transfer)
	case ports != len(containers):
		t.Fatalf("bridge %s has %d ports, want %d", bridge, ports, len(containers))
	}
}

func (e *env) assertStateEmpty() {
	e.t.Helper()
	st, err := state.Open(filepath.Join(e.stateDir, "state.db"), 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	if c, cerr := st.Count(); cerr != nil || !c.Empty() {
		e.t.Fatalf("adapter state not empty: %+v %v", c, cerr)
	}
}

func dirNames(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
