package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// OVS is a private OVS-DPDK instance (own rundir, database, DPDK file
// prefix; --no-huge) started for one test and stopped at its end.
type OVS struct {
	t      testing.TB
	Dir    string
	DB     string // "unix:<dir>/db.sock", for ovs-vsctl --db and plugin configs
	prefix string
	// kernelLinks are the kernel devices the netdev datapath creates (one
	// per bridge, and ovs-netdev) and leaves behind when it stops.
	kernelLinks []string
}

const ovsVswitchdDPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"

// RequiresOVSDPDK skips t when OVS-DPDK is not installed (make test's
// deps step installs it).
func RequiresOVSDPDK(t testing.TB) {
	t.Helper()
	RequiresRoot(t)
	for _, bin := range []string{ovsVswitchdDPDK, "/usr/sbin/ovsdb-server", "/usr/bin/ovs-vsctl"} {
		if !FileExists(bin) {
			t.Skipf("skipped: %s missing; install openvswitch-switch-dpdk (make deps)", bin)
		}
	}
}

// StartOVS starts ovsdb-server and ovs-vswitchd-dpdk in a temp dir.
func StartOVS(t testing.TB) *OVS {
	t.Helper()
	RequiresOVSDPDK(t)
	dir, err := os.MkdirTemp("/tmp", "vmct-ovs") // short: socket paths must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	o := &OVS{t: t, Dir: dir, DB: "unix:" + filepath.Join(dir, "db.sock"), prefix: UniqueName("vmct")}
	if !linkExists("ovs-netdev") {
		o.kernelLinks = append(o.kernelLinks, "ovs-netdev")
	}
	t.Cleanup(o.stop)
	o.run("ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
	o.run("ovsdb-server", filepath.Join(dir, "conf.db"), "--remote=punix:"+filepath.Join(dir, "db.sock"),
		"--pidfile="+filepath.Join(dir, "ovsdb.pid"), "--unixctl="+filepath.Join(dir, "ovsdb.ctl"),
		"--detach", "--log-file="+filepath.Join(dir, "ovsdb.log"))
	o.Vsctl("--no-wait", "init")
	// per-port-memory sizes each port's mempool by its queues: the shared
	// mempool asks for 262144 mbufs, which 1 GiB without hugepages cannot
	// hold once two guests are attached ("Failed to create memory pool").
	o.Vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
		"other_config:per-port-memory=true",
		"other_config:dpdk-extra=--no-huge --legacy-mem -m 1024 --no-pci --file-prefix "+o.prefix)
	o.StartSwitch()
	return o
}

// StartSwitch starts ovs-vswitchd (again, after StopSwitch). DPDK's EAL
// init occasionally fails on a loaded machine ("Cannot init memzone"): it
// is retried twice.
func (o *OVS) StartSwitch() {
	o.t.Helper()
	var out []byte
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		cmd := exec.Command(ovsVswitchdDPDK, o.DB, "--pidfile="+filepath.Join(o.Dir, "vswitchd.pid"),
			"--unixctl="+filepath.Join(o.Dir, "vswitchd.ctl"), "--detach", "--log-file="+filepath.Join(o.Dir, "vswitchd.log"))
		cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.Dir)
		if out, err = cmd.CombinedOutput(); err == nil {
			return
		}
		_ = os.RemoveAll("/var/run/dpdk/" + o.prefix)
		time.Sleep(time.Second)
	}
	o.t.Fatalf("start ovs-vswitchd: %v\n%s", err, out)
}

// StopSwitch stops ovs-vswitchd, keeping the database (a switch restart).
func (o *OVS) StopSwitch() {
	_ = exec.Command("ovs-appctl", "-t", filepath.Join(o.Dir, "vswitchd.ctl"), "exit").Run()
	waitGone(filepath.Join(o.Dir, "vswitchd.pid"))
}

func (o *OVS) stop() {
	o.StopSwitch()
	_ = exec.Command("ovs-appctl", "-t", filepath.Join(o.Dir, "ovsdb.ctl"), "exit").Run()
	waitGone(filepath.Join(o.Dir, "ovsdb.pid"))
	_ = os.RemoveAll(o.Dir)
	_ = os.RemoveAll("/var/run/dpdk/" + o.prefix)
	for _, name := range o.kernelLinks {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func waitGone(pidfile string) {
	for i := 0; i < 100 && FileExists(pidfile); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func (o *OVS) run(name string, args ...string) string {
	o.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		o.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Vsctl runs ovs-vsctl against this instance and returns its output.
func (o *OVS) Vsctl(args ...string) string {
	o.t.Helper()
	return strings.TrimSpace(o.run("ovs-vsctl", append([]string{"--db=" + o.DB, "--timeout=20"}, args...)...))
}

// Appctl runs ovs-appctl against this instance's ovs-vswitchd and returns
// its output.
func (o *OVS) Appctl(args ...string) string {
	o.t.Helper()
	return strings.TrimSpace(o.run("ovs-appctl", append([]string{"-t", filepath.Join(o.Dir, "vswitchd.ctl")}, args...)...))
}

// AddBridge creates a netdev-datapath bridge.
func (o *OVS) AddBridge(name string) {
	o.t.Helper()
	o.Vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
	o.kernelLinks = append(o.kernelLinks, name)
}

// String names the instance.
func (o *OVS) String() string { return fmt.Sprintf("ovs(%s)", o.Dir) }
