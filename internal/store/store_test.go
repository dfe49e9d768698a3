package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
)

func TestPutGetListDelete(t *testing.T) {
	s := New(t.TempDir())
	for _, r := range []*Record{
		{Plugin: "vm-bridge", Network: "a", ContainerID: "c1", IfName: "eth0"},
		{Plugin: "vm-bridge", Network: "a", ContainerID: "c2", IfName: "eth0"},
		{Plugin: "vm-bridge", Network: "b", ContainerID: "c1", IfName: "net1"},
	} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get("c1", "eth0")
	if err != nil || got == nil || got.Network != "a" || got.Created.IsZero() {
		t.Fatalf("get: %+v %v", got, err)
	}
	if missing, err := s.Get("nope", "eth0"); missing != nil || err != nil {
		t.Fatalf("get missing: %+v %v", missing, err)
	}
	if list, _ := s.List("a"); len(list) != 2 {
		t.Fatalf("list a: %d", len(list))
	}
	if list, _ := s.List(""); len(list) != 3 {
		t.Fatalf("list all: %d", len(list))
	}
	for _, k := range [][2]string{{"c1", "eth0"}, {"c2", "eth0"}, {"c1", "net1"}, {"c1", "net1"}} {
		if err := s.Delete(k[0], k[1]); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 0 {
		t.Fatalf("state dir not empty after deletes: %v", entries)
	}
}

func TestRejectsUnsafeKeys(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Put(&Record{ContainerID: "../../etc", IfName: "eth0"}); err == nil {
		t.Fatal("path escape accepted")
	}
}

// TestLockSerialises: a second locker waits until the first unlocks, and
// removing the lock file does not let two holders in.
func TestLockSerialises(t *testing.T) {
	s := New(t.TempDir())
	first, err := s.Lock("c1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	acquired := make(chan *Lock)
	go func() {
		l, _ := s.Lock("c1", "eth0")
		acquired <- l
	}()
	select {
	case <-acquired:
		t.Fatal("second lock acquired while the first is held")
	case <-time.After(100 * time.Millisecond):
	}
	first.Unlock(true)
	second := <-acquired
	if second == nil {
		t.Fatal("second lock failed")
	}
	second.Unlock(true)
	if _, err := os.Stat(filepath.Join(s.Dir, ".locks")); !os.IsNotExist(err) {
		t.Fatalf("lock dir left behind: %v", err)
	}
}

// TestLockPathsInjective: no two attachments share a lock file.
func TestLockPathsInjective(t *testing.T) {
	s := New("/s")
	keyprop.AssertInjective(t, "lock file", keyprop.RandomKeys(1, 10000), func(k keyprop.Key) string {
		return s.lockPath(k.ContainerID, k.IfName)
	})
}
