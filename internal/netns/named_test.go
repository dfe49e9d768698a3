package netns_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
)

// TestDeleteNamed: a named netns goes, a missing one is success, and so
// is the plain file a CreateNamed killed before its bind mount leaves
// (removed, so the name can be created again).
func TestDeleteNamed(t *testing.T) {
	testutil.RequiresRoot(t)
	name := testutil.UniqueName("vmctdn")
	path, err := netns.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	if err = netns.DeleteNamed(name); err != nil || testutil.FileExists(path) {
		t.Fatalf("delete: %v, left: %v", err, testutil.FileExists(path))
	}
	if err = netns.DeleteNamed(name); err != nil {
		t.Fatalf("delete of a missing netns: %v", err)
	}
	if err = os.WriteFile(filepath.Join(netns.NamedDir, name), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err = netns.DeleteNamed(name); err != nil || testutil.FileExists(path) {
		t.Fatalf("delete of an interrupted create's file: %v, left: %v", err, testutil.FileExists(path))
	}
	if _, err = netns.CreateNamed(name); err != nil {
		t.Fatalf("create again: %v", err)
	}
	if err = netns.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
}
