package link_test

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// addVeth adds a veth pair name / name+"p" in the calling thread's netns.
func addVeth(t *testing.T, name string) {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: name + "p"}); err != nil {
		t.Fatalf("add veth %q: %v", name, err)
	}
}

// TestMoveToNetnsAllOrNothing: the kernel moves a device before renaming
// it, so a target name already taken would leave the device moved under
// its old name; MoveToNetns brings it back and the failed call changes
// nothing. A free name moves and renames it.
func TestMoveToNetnsAllOrNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	host, pod := testutil.NewNS(t), testutil.NewNS(t)
	if err := netns.Do(pod.Path, func() error { addVeth(t, "eth0"); return nil }); err != nil {
		t.Fatal(err)
	}
	podFile, err := os.Open(pod.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer podFile.Close()
	podLinks := func() (names []string) {
		_ = netns.Do(pod.Path, func() error {
			links, _ := netlink.LinkList()
			for _, l := range links {
				names = append(names, l.Attrs().Name)
			}
			return nil
		})
		return names
	}
	err = netns.Do(host.Path, func() error {
		addVeth(t, "vmctmove0")
		l, err := link.ByName("vmctmove0")
		if err != nil {
			return err
		}
		if err := link.MoveToNetns(l, int(podFile.Fd()), "eth0"); err == nil {
			t.Fatal("moving into a netns whose eth0 is taken succeeded")
		}
		if !link.Exists("vmctmove0") {
			t.Fatalf("the device did not stay in (or come back to) the host after the failed move; pod has %v", podLinks())
		}
		if got := podLinks(); len(got) != 3 { // lo and the pod's own eth0 and its peer
			t.Fatalf("pod netns links after the failed move: %v", got)
		}
		// The round trip may have given it another ifindex: look it up again.
		if l, err = link.ByName("vmctmove0"); err != nil {
			return err
		}
		if err := link.MoveToNetns(l, int(podFile.Fd()), "net1"); err != nil {
			return err
		}
		if link.Exists("vmctmove0") {
			t.Fatal("the device is still in the host after a successful move")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := podLinks(); len(got) != 4 {
		t.Fatalf("pod netns links after the move: %v", got)
	}
}
