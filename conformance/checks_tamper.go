package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmcni/vmcni/internal/netns"
)

// checkTamper deletes, inside the netns, every interface the ADD result
// places there (what a crashed workload or an operator may do), then
// expects CHECK to fail (the spec: CHECK errors when the container's
// networking is not as ADD left it) and DEL to succeed and clean the host
// anyway. Skipped when the result places no interface in the netns (VM
// devices only) or only physical ones the kernel cannot delete (an SR-IOV
// VF's netdev), or the conflist is older than 0.4.0 (no CHECK).
func (s *suite) checkTamper(ctx context.Context) verdict {
	if !s.atLeast("0.4.0") {
		return skip("CHECK needs cniVersion 0.4.0, the conflist has %s", s.net.list.CNIVersion)
	}
	before, att, cleanup, err := s.beginAttachment()
	if err != nil {
		return fail("%v", err)
	}
	defer cleanup()
	rt := att.runtime()
	deleted, err := s.addThenDelete(ctx, rt, att)
	if err != nil || len(deleted) == 0 {
		_ = s.cni.DelNetworkList(ctx, s.net.list, rt)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return skip("the kernel cannot delete the interface the result places in the netns (a physical netdev, such as an SR-IOV VF): %v", err)
		}
		if err != nil {
			return fail("%v", err)
		}
		return skip("the result places no interface in the netns: nothing to delete")
	}
	v := s.checkThenDel(ctx, rt, deleted)
	if v.status != Pass {
		return v
	}
	cleanup()
	if hv, ok := s.hygiene(before, "after DEL of the tampered attachment"); !ok {
		return hv
	}
	return v
}

// addThenDelete runs ADD and deletes the result's interfaces in the netns,
// returning their names.
func (s *suite) addThenDelete(ctx context.Context, rt *libcni.RuntimeConf, att attachment) ([]string, error) {
	r, err := s.cni.AddNetworkList(ctx, s.net.list, rt)
	if err != nil {
		return nil, fmt.Errorf("ADD: %w", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("convert ADD result: %w", err)
	}
	return deleteNetnsInterfaces(res, att.Netns)
}

// checkThenDel runs CHECK, which must fail, then DEL, which must succeed.
func (s *suite) checkThenDel(ctx context.Context, rt *libcni.RuntimeConf, deleted []string) verdict {
	checkErr := s.cni.CheckNetworkList(ctx, s.net.list, rt)
	if err := s.cni.DelNetworkList(ctx, s.net.list, rt); err != nil {
		return fail("DEL after %s was deleted in the netns: %v", strings.Join(deleted, ", "), err)
	}
	if checkErr == nil {
		return fail("CHECK succeeded although %s was deleted in the netns", strings.Join(deleted, ", "))
	}
	return pass("CHECK noticed %s missing (%s); DEL cleaned up; host as before", strings.Join(deleted, ", "), truncate(checkErr.Error(), 100))
}

// deleteNetnsInterfaces deletes the result's interfaces whose sandbox is
// the netns at path and returns their names.
func deleteNetnsInterfaces(res *current.Result, path string) ([]string, error) {
	var names []string
	for _, iface := range res.Interfaces {
		if iface.Sandbox == path {
			names = append(names, iface.Name)
		}
	}
	err := netns.Do(path, func() error {
		for _, name := range names {
			l, err := netlink.LinkByName(name)
			if errors.As(err, new(netlink.LinkNotFoundError)) {
				continue // went with another (a macvtap with its lower device)
			}
			if err != nil {
				return fmt.Errorf("find %q in the netns: %w", name, err)
			}
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("delete %q in the netns: %w", name, err)
			}
		}
		return nil
	})
	return names, err
}
