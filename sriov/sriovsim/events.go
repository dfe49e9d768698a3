package sriovsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// hostNsid is linkMsg.nsid for an event of the host netns itself.
const hostNsid = -1

// linkMsg is one link event, of the host netns or of a netns that has an
// id in it.
type linkMsg struct {
	netlink.LinkUpdate
	// nsid is the event's netns's id in the host netns, hostNsid for the
	// host netns's own events.
	nsid int
	// newNsid is, for an RTM_DELLINK sent because the link moved to
	// another netns, that netns's id in the event's netns (the kernel's
	// IFLA_NEW_NETNSID); -1 otherwise.
	newNsid int
}

// linkSocket receives the link events (RTNLGRP_LINK) of the netns it was
// opened in and, with NETLINK_LISTEN_ALL_NSID, those of every netns that
// has an id in it, tagged with that id, in the order the kernel sent
// them. It holds no reference to those other netns: a pod netns dies as
// it would without the simulator.
type linkSocket struct {
	f      *os.File
	selfID int // the netns's id for itself, -1 when it has none (the usual case)
	// buf and oob are receive's buffers (it has one caller at a time).
	buf, oob []byte
}

// openLinkSocket opens a linkSocket in the calling thread's netns, whose
// handle is self.
func openLinkSocket(self, rcvbuf int) (*linkSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open a netlink socket: %w", err)
	}
	if err = setupLinkSocket(fd, rcvbuf); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	selfID, err := netlink.GetNetNsIdByFd(self)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("get the host netns's id for itself: %w", err)
	}
	// Non-blocking, so the File is pollable: Close wakes a blocked receive.
	return &linkSocket{
		f: os.NewFile(uintptr(fd), "netlink-link-events"), selfID: selfID,
		buf: make([]byte, 1<<16), oob: make([]byte, unix.CmsgSpace(4)),
	}, nil
}

// setupLinkSocket sizes the receive buffer of netlink socket fd, asks for
// the events of every netns with an id and joins the link group.
func setupLinkSocket(fd, rcvbuf int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return fmt.Errorf("set the receive buffer size: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		return fmt.Errorf("listen to every netns (NETLINK_LISTEN_ALL_NSID): %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		return fmt.Errorf("bind to the link group: %w", err)
	}
	return nil
}

// close ends receive (which then returns os.ErrClosed).
func (s *linkSocket) close() { _ = s.f.Close() }

// receive waits for the next datagram and returns its link events, or
// the socket's error (os.ErrClosed after close; ENOBUFS when events were
// lost). Messages that are not link events are dropped; a datagram that
// does not parse, or a link event of the host netns that does not, is
// reported in errs (a link event of another netns that does not parse is
// dropped: it cannot be a VF netdev's). receive has one caller at a time.
func (s *linkSocket) receive() (msgs []linkMsg, errs []error, err error) {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	buf, oob := s.buf, s.oob
	var n, oobn, flags int
	var from unix.Sockaddr
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return nil, nil, err
	}
	if rerr != nil {
		return nil, nil, rerr
	}
	if flags&unix.MSG_TRUNC != 0 {
		return nil, []error{fmt.Errorf("a netlink datagram of more than %d bytes was truncated", len(buf))}, nil
	}
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		return nil, nil, nil // not from the kernel
	}
	nsid := s.nsid(oob[:oobn])
	// The links returned alias what is parsed: not the reused buffer.
	nlmsgs, err := syscall.ParseNetlinkMessage(append([]byte(nil), buf[:n]...))
	if err != nil {
		return nil, []error{fmt.Errorf("parse a netlink datagram: %w", err)}, nil
	}
	for _, m := range nlmsgs {
		if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
			continue
		}
		hdr := unix.NlMsghdr(m.Header)
		l, err := netlink.LinkDeserialize(&hdr, m.Data)
		if err != nil {
			if nsid == hostNsid {
				errs = append(errs, fmt.Errorf("parse a link event: %w", err))
			}
			continue
		}
		msgs = append(msgs, linkMsg{
			LinkUpdate: netlink.LinkUpdate{IfInfomsg: *nl.DeserializeIfInfomsg(m.Data), Header: hdr, Link: l},
			nsid:       nsid, newNsid: newNsid(m.Data),
		})
	}
	return msgs, errs, nil
}

// nsid is the id of the netns a datagram came from, given its control
// messages: hostNsid when the kernel added none (the socket's own netns).
func (s *linkSocket) nsid(oob []byte) int {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return hostNsid
	}
	for _, c := range cmsgs {
		if c.Header.Level == unix.SOL_NETLINK && c.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(c.Data) >= 4 {
			id := int(int32(binary.NativeEndian.Uint32(c.Data)))
			if id == s.selfID {
				return hostNsid
			}
			return id
		}
	}
	return hostNsid
}

// newNsid is the IFLA_NEW_NETNSID of an ifinfomsg and its attributes, -1
// when absent.
func newNsid(data []byte) int {
	if len(data) < unix.SizeofIfInfomsg {
		return -1
	}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return -1
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_NEW_NETNSID && len(a.Value) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(a.Value)))
		}
	}
	return -1
}
