package netns_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/testutil"
)

// TestReadSysfs: both ways of reading a netns's sysfs (the detached mount
// and the private mount namespace fallback) see the links of that netns,
// not the host's, agree on every match of a glob, and leave the host's
// mount table as it was.
func TestReadSysfs(t *testing.T) {
	ns := testutil.NewNS(t)
	path, probe := ns.Path, ns.Name // a link name too (15 bytes at most)
	var ifindex int
	err := netns.Do(path, func() error {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: probe}}); err != nil {
			return err
		}
		l, err := netlink.LinkByName(probe)
		if err == nil {
			ifindex = l.Attrs().Index
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + probe); err == nil {
		t.Fatalf("%s is visible on the host: the test cannot tell the views apart", probe)
	}
	mountsBefore := mountTable(t)
	for _, read := range []struct {
		how string
		fn  func(path, rel string) (map[string][]byte, error)
	}{{"detached mount", netns.ReadSysfs}, {"private mount namespace", netns.ReadSysfsInPrivateMountNS}} {
		files, err := read.fn(path, probe+"/ifindex")
		if err != nil {
			t.Fatalf("%s: %v", read.how, err)
		}
		if got := string(bytes.TrimSpace(files[probe+"/ifindex"])); got != strconv.Itoa(ifindex) {
			t.Errorf("%s: %s/ifindex = %q, want %d (all: %q)", read.how, probe, got, ifindex, files)
		}
		files, err = read.fn(path, "*/mtu")
		if err != nil || len(files) != 2 || files["lo/mtu"] == nil || files[probe+"/mtu"] == nil {
			t.Errorf("%s: */mtu = %q, %v; want lo's and %s's only", read.how, files, err, probe)
		}
		if files, err := read.fn(path, "vmct-none/ifindex"); err != nil || len(files) != 0 {
			t.Errorf("%s: no match gave %q, %v; want nothing", read.how, files, err)
		}
	}
	if _, err := netns.ReadSysfs("/var/run/netns/vmct-missing", "*"); err == nil {
		t.Error("a missing netns was read")
	}
	if after := mountTable(t); after != mountsBefore {
		t.Errorf("mount table changed:\nbefore %s\nafter %s", mountsBefore, after)
	}
}

// mountTable is the host's mount table (init's: the fallback's throwaway
// thread may be the process's main thread, which /proc/self shows).
func mountTable(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
