package link

import (
	"errors"
	"fmt"
	"hash/fnv"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// GroupFor returns a link group number for the devices of one attachment,
// derived from key (never 0, the default group). Tearing down by group
// deletes all of an attachment's links in one kernel batch, paying the RCU
// grace periods of link removal once instead of once per link.
func GroupFor(key string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return h.Sum32()&0x7fffffff | 0x40000000
}

// SetGroup puts l in link group group.
func SetGroup(l netlink.Link, group uint32) error {
	if err := retry(func() error { return netlink.LinkSetGroup(l, int(group)) }); err != nil {
		return fmt.Errorf("set group of %q: %w", l.Attrs().Name, err)
	}
	return nil
}

// DeleteGroup deletes every link of group in the calling thread's netns
// with one RTM_DELLINK (one unregister batch); an empty group is success.
func DeleteGroup(group uint32) error {
	err := retry(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
	if err == nil || errors.Is(err, syscall.ENODEV) {
		return nil
	}
	return fmt.Errorf("delete link group %d: %w", group, err)
}
