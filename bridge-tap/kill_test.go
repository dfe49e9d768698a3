package bridgetap_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
)

// TestSIGKILLAtRandomPoints runs the real vm-bridge binary's ADD and kills
// it (SIGKILL, with its IPAM child: the whole process group, as a runtime
// killing the plugin's cgroup would) after a random delay around its
// duration, 200 times across the three modes; each time DEL (even runs) or
// GC (odd runs) must leave the host, the pod netns, the state and the IPAM
// leases exactly as before.
func TestSIGKILLAtRandomPoints(t *testing.T) {
	e := newEnv(t)
	t.Setenv("CNI_PATH", e.bin)
	ns := testutil.NewNS(t)
	nsBefore := testutil.TakeNetnsSnapshot(t, ns.Path)
	hostBefore := testutil.TakeSnapshot(t, e.dirs(), e.bridge)
	runs, killed := 200, 0
	if testing.Short() {
		runs = 30
	}
	for i := range runs {
		ip := &inProcess{e: e, conf: e.vmBridge(modes[i%len(modes)], map[string]any{"ipMasq": true})}
		args := ip.args("killed", ns.Path, nil)
		cmd := exec.Command(filepath.Join(e.bin, "vm-bridge"))
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=killed", "CNI_NETNS="+ns.Path,
			"CNI_IFNAME=eth0", "CNI_PATH="+e.bin)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(args.StdinData), io.Discard, io.Discard
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed++
		}
		clean, what := func() error { return ip.del("killed", ns.Path, nil) }, "DEL"
		if i%2 == 1 {
			clean, what = ip.gc, "GC"
		}
		if err := clean(); err != nil {
			t.Fatalf("run %d: %s after SIGKILL: %v", i, what, err)
		}
		testutil.AssertSameNetns(t, ns.Path, nsBefore)
		testutil.AssertSameHost(t, hostBefore, e.dirs(), e.bridge)
	}
	t.Logf("%d ADDs, %d killed before they finished; host as before after each DEL or GC", runs, killed)
}
