package link

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RedirectPriority is the filter priority vmcni's redirect filters use.
const RedirectPriority = 49152

var ingressParent = netlink.MakeHandle(0xffff, 0)

func ingressQdisc(l netlink.Link) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index,
		Handle:    ingressParent,
		Parent:    netlink.HANDLE_INGRESS,
	}}
}

// RedirectIngress makes every frame received on from leave through to:
// an ingress qdisc on from with a u32 "match u8 0 0" filter and a mirred
// egress redirect action (this kernel has no matchall/flower).
func RedirectIngress(from, to netlink.Link) error {
	if err := retry(func() error { return netlink.QdiscAdd(ingressQdisc(from)) }); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add ingress qdisc on %q: %w", from.Attrs().Name, err)
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from.Attrs().Index,
			Parent:    ingressParent,
			Priority:  RedirectPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Sel: &netlink.TcU32Sel{
			Flags: netlink.TC_U32_TERMINAL,
			Nkeys: 1,
			Keys:  []netlink.TcU32Key{{Mask: 0, Val: 0, Off: 0}},
		},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to.Attrs().Index,
		}},
	}
	if err := retry(func() error { return netlink.FilterAdd(filter) }); err != nil {
		return fmt.Errorf("add redirect filter %q -> %q: %w", from.Attrs().Name, to.Attrs().Name, err)
	}
	return nil
}

// RemoveIngress deletes the ingress qdisc of l (and with it its filters);
// a missing qdisc or link is success.
func RemoveIngress(l netlink.Link) error {
	err := retry(func() error { return netlink.QdiscDel(ingressQdisc(l)) })
	if err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EINVAL) || IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("delete ingress qdisc of %q: %w", l.Attrs().Name, err)
}

// RedirectTarget returns the ifindex the vmcni redirect filter on l's
// ingress sends frames to, or 0 when there is none.
func RedirectTarget(l netlink.Link) (int, error) {
	var filters []netlink.Filter
	err := retry(func() (err error) { filters, err = netlink.FilterList(l, ingressParent); return err })
	if err != nil {
		return 0, fmt.Errorf("list filters of %q: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		u32, ok := f.(*netlink.U32)
		if !ok || u32.Priority != RedirectPriority {
			continue
		}
		for _, a := range u32.Actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR {
				return m.Ifindex, nil
			}
		}
	}
	return 0, nil
}

// HasIngress reports whether l has an ingress qdisc.
func HasIngress(l netlink.Link) (bool, error) {
	var qdiscs []netlink.Qdisc
	err := retry(func() (err error) { qdiscs, err = netlink.QdiscList(l); return err })
	if err != nil {
		return false, fmt.Errorf("list qdiscs of %q: %w", l.Attrs().Name, err)
	}
	for _, q := range qdiscs {
		if q.Type() == "ingress" {
			return true, nil
		}
	}
	return false, nil
}

// RemoveRedirect deletes vmcni's redirect filter from l's ingress (the
// filters at RedirectPriority) and then, unless shared (the qdisc was
// there before vmcni), the ingress qdisc when no other filter is left on
// it. Other components' filters, and their qdisc, are never touched. A
// missing qdisc, filter or link is success.
func RemoveRedirect(l netlink.Link, shared bool) error {
	var filters []netlink.Filter
	err := retry(func() (err error) { filters, err = netlink.FilterList(l, ingressParent); return err })
	if err != nil {
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) || IsNotFound(err) {
			return nil // no ingress qdisc
		}
		return fmt.Errorf("list filters of %q: %w", l.Attrs().Name, err)
	}
	others := 0
	for _, f := range filters {
		if f.Attrs().Priority != RedirectPriority {
			others++
			continue
		}
		err := retry(func() error { return netlink.FilterDel(f) })
		if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("delete redirect filter of %q: %w", l.Attrs().Name, err)
		}
	}
	if shared || others > 0 {
		return nil
	}
	return RemoveIngress(l)
}
