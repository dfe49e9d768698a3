package link

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Settings are attributes of an existing link that Apply sets in one
// request; zero values leave an attribute as it is.
type Settings struct {
	MTU   int
	MAC   net.HardwareAddr
	Group uint32
	Alias string
	Up    bool
}

// Apply sets s on l with one RTM_NEWLINK, one netlink round trip instead
// of one per attribute. The kernel applies the attributes in turn: on an
// error, the ones before it may be set.
func Apply(l netlink.Link, s Settings) error {
	err := retry(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(l.Attrs().Index)
		if s.Up {
			msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
		}
		req.AddData(msg)
		if s.MTU > 0 {
			req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU))))
		}
		if s.MAC != nil {
			req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, s.MAC))
		}
		if s.Group != 0 {
			req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(s.Group)))
		}
		if s.Alias != "" {
			req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(s.Alias)))
		}
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("configure %q: %w", l.Attrs().Name, err)
	}
	return nil
}
