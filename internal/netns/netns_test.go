package netns_test

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
)

// threadNetns identifies the calling thread's network namespace.
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDo: fn runs inside the namespace, nested calls return to the outer
// namespace, the thread is back home afterwards (also when fn fails), and
// a missing path is ErrGone.
func TestDo(t *testing.T) {
	testutil.RequiresRoot(t)
	var paths [2]string
	var ids [2]uint64
	for i := range paths {
		paths[i] = testutil.NewNS(t).Path
		id, err := netns.Identity(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		var dev uint64
		if _, err = fmt.Sscanf(id, "%d:%d", &dev, &ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	home := threadNetns(t)
	fnErr := errors.New("fn failed")
	err := netns.Do(paths[0], func() error {
		if got := threadNetns(t); got != ids[0] {
			t.Errorf("in the first netns: thread in %d, want %d", got, ids[0])
		}
		err := netns.Do(paths[1], func() error {
			if got := threadNetns(t); got != ids[1] {
				t.Errorf("nested: thread in %d, want %d", got, ids[1])
			}
			return nil
		})
		if got := threadNetns(t); err != nil || got != ids[0] {
			t.Errorf("after the nested Do (%v): thread in %d, want %d", err, got, ids[0])
		}
		return fnErr
	})
	if !errors.Is(err, fnErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if got := threadNetns(t); got != home {
		t.Errorf("after Do: thread in %d, want home %d", got, home)
	}
	if err = netns.Do("/var/run/netns/vmct-missing", func() error { return nil }); !errors.Is(err, netns.ErrGone) {
		t.Errorf("missing netns: %v, want ErrGone", err)
	}
}
