package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KillSweep runs a plugin binary's ADD as a real process and kills it
// with SIGKILL at a random moment, the whole process group (its IPAM child
// too), as a runtime killing the plugin's cgroup would. After each kill,
// DEL (even runs) or GC (odd runs) must leave the host exactly as before.
// The first timing runs ADD to the end and DEL it: the kills then spread
// over the longest of them, so some land before the first side effect,
// most inside the ADD and some after it finished.
type KillSweep struct {
	// Runs is the number of killed ADDs (30 with -short).
	Runs int
	// Add returns run i's ADD command, its environment and stdin set, not
	// started; runs 0 to 4 are the timing runs, then come the killed ones.
	Add func(i int) *exec.Cmd
	// Start starts cmd (nil: cmd.Start); for a plugin that must run in a
	// test's own host netns, start it from a thread inside it.
	Start func(cmd *exec.Cmd) error
	// Del and GC clean up run i's attachment; GC may be nil (DEL always).
	Del, GC func(i int) error
	// Same fails t when the host differs from before the sweep.
	Same func(t testing.TB, when string)
}

// KillStats is what a KillSweep did.
type KillStats struct {
	Runs   int           // killed ADDs
	Killed int           // of which died before they finished
	ADD    time.Duration // the longest timing ADD
}

const timingRuns = 5

// Run runs the sweep.
func (s KillSweep) Run(t *testing.T) KillStats {
	t.Helper()
	st := KillStats{Runs: s.Runs}
	if testing.Short() {
		st.Runs = min(st.Runs, 30)
	}
	for i := range timingRuns + st.Runs {
		cmd := s.Add(i)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		start := time.Now()
		if err := s.start(cmd); err != nil {
			t.Fatalf("run %d: start: %v", i, err)
		}
		if i < timingRuns {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("timing ADD: %v\n%s", err, out.String())
			}
			st.ADD = max(st.ADD, time.Since(start))
			s.clean(t, i, "a whole ADD")
			continue
		}
		time.Sleep(time.Duration(rand.Int64N(int64(st.ADD))))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			st.Killed++
		}
		s.clean(t, i, "SIGKILL")
	}
	t.Logf("kill sweep: %d ADDs killed at random points (a whole ADD takes up to %v here), %d before they finished; host as before after each DEL or GC",
		st.Runs, st.ADD, st.Killed)
	return st
}

func (s KillSweep) start(cmd *exec.Cmd) error {
	if s.Start != nil {
		return s.Start(cmd)
	}
	return cmd.Start()
}

// clean runs DEL (even i) or GC (odd i) and checks the host.
func (s KillSweep) clean(t *testing.T, i int, after string) {
	t.Helper()
	clean, what := s.Del, "DEL"
	if i%2 == 1 && s.GC != nil {
		clean, what = s.GC, "GC"
	}
	if err := clean(i); err != nil {
		t.Fatalf("run %d: %s after %s: %v", i, what, after, err)
	}
	s.Same(t, fmt.Sprintf("run %d: %s after %s", i, what, after))
}

// RemoveEmptyLeases deletes the empty lease files under a host-local data
// dir and returns how many there were. The reference host-local plugin
// killed between creating a lease file and writing the owner into it
// leaves one (its write is not atomic) that neither its DEL nor its GC
// releases: a kill sweep through host-local removes and counts them, as
// that plugin's window, not the one under test.
func RemoveEmptyLeases(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" || strings.HasPrefix(d.Name(), "last_reserved_ip") {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Size() != 0 {
			return err
		}
		n++
		return os.Remove(path)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}
