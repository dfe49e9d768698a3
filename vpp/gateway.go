package vpp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/vmcni/vmcni/vpp/vppapi"
)

// An l3 network is routed by VPP the way Contiv-VPP and Calico-VPP route
// pods: one loopback per network holds the gateway addresses (with the
// subnet's prefix length, so VPP owns the connected prefix once), every
// attachment interface is unnumbered to it (borrows its addresses, so VPP
// answers ARP/ND for the gateway on it and sources from it) and gets a
// host route (/32, /128) to each guest address. Any number of attachments
// then share a subnet: VPP refuses the same connected prefix on two
// interfaces of one table, but here only the loopback has it.

// plumbL3 attaches the interface to the network's gateway loopback and
// routes each guest address to it, pushing an undo step after each.
func (a *addition) plumbL3(gateways []*net.IPNet, guests []net.IP) error {
	if err := a.attachToGateway(gateways); err != nil {
		return err
	}
	for _, ip := range guests {
		r := vppapi.HostRoute(a.index, ip)
		if err := a.vpp.AddRoute(r); err != nil {
			return fmt.Errorf("add route %s via sw_if_index %d: %w", r.Prefix, r.Via, err)
		}
		a.Undo(fmt.Sprintf("delete route %s", r.Prefix), func() error { return a.vpp.DeleteRoutePath(r) })
		if err := a.Step("route"); err != nil {
			return err
		}
	}
	return nil
}

// attachToGateway makes the interface unnumbered to the network's gateway
// loopback, which it finds or creates first. Both happen under the
// network lock, so a concurrent ADD's rollback cannot delete the loopback
// in between.
func (a *addition) attachToGateway(gateways []*net.IPNet) error {
	lock, err := lockNetwork(a.conf.StateDir, a.conf.Name)
	if err != nil {
		return err
	}
	defer lock.Unlock(true)
	loop, err := a.ensureGateway(gateways)
	if err != nil {
		return err
	}
	if err := a.vpp.SetUnnumbered(a.index, loop); err != nil {
		return fmt.Errorf("make sw_if_index %d unnumbered to the gateway loopback %d: %w", a.index, loop, err)
	}
	index := a.index
	a.Undo("unset unnumbered", func() error { return a.vpp.UnsetUnnumbered(index, loop) })
	return a.Step("unnumbered")
}

// ensureGateway returns the sw_if_index of the network's gateway loopback
// (network lock held). It creates the loopback when missing, then tags it,
// sets it admin up and adds the missing gateway addresses, each only when
// not done yet, so it also completes a loopback an interrupted ADD left
// half made. The undo steps remove only what this ADD added and only while
// no interface is unnumbered to the loopback: a loopback this ADD created,
// else each address it added.
func (a *addition) ensureGateway(gateways []*net.IPNet) (uint32, error) {
	network := a.conf.Name
	ifs, err := a.vpp.Interfaces()
	if err != nil {
		return 0, err
	}
	loop := findGateway(ifs, network)
	created := loop == nil
	if created {
		if loop, err = a.createGateway(); err != nil {
			return 0, err
		}
	} else {
		a.log.Debug("gateway loopback found", "sw_if_index", loop.Index, "name", loop.Name)
	}
	index := loop.Index
	if loop.Tag != GatewayTag(network) {
		if err = a.vpp.SetTag(index, GatewayTag(network)); err != nil {
			return 0, fmt.Errorf("tag the gateway loopback: %w", err)
		}
		if err = a.Step("gateway-tag"); err != nil {
			return 0, err
		}
	}
	if !loop.AdminUp {
		if err = a.vpp.SetAdminUp(index, true); err != nil {
			return 0, fmt.Errorf("set the gateway loopback up: %w", err)
		}
		if err = a.Step("gateway-up"); err != nil {
			return 0, err
		}
	}
	have := map[string]bool{}
	if !created {
		if have, err = a.gatewayAddresses(index, gateways); err != nil {
			return 0, err
		}
	}
	for _, gw := range gateways {
		if have[gw.String()] {
			continue
		}
		if err = a.vpp.AddAddress(index, gw); err != nil {
			return 0, fmt.Errorf("add gateway %s to the gateway loopback: %w", gw, err)
		}
		have[gw.String()] = true
		if !created { // else it goes with the loopback
			a.Undo(fmt.Sprintf("remove gateway %s", gw), func() error { return a.deleteGateway(index, gw) })
		}
		if err = a.Step("gateway-address"); err != nil {
			return 0, err
		}
	}
	return index, nil
}

// createGateway creates the network's gateway loopback (untagged, down,
// with the network's MAC) and pushes its undo step.
func (a *addition) createGateway() (*vppapi.Interface, error) {
	index, err := a.vpp.CreateLoopback(gatewayMAC(a.conf.Name))
	if err != nil {
		return nil, fmt.Errorf("create the gateway loopback: %w", err)
	}
	a.Undo("delete the gateway loopback", func() error { return a.deleteGateway(index, nil) })
	return &vppapi.Interface{Index: index}, a.Step("gateway")
}

// gatewayAddresses dumps the loopback's addresses of the families of
// gateways.
func (a *addition) gatewayAddresses(index uint32, gateways []*net.IPNet) (map[string]bool, error) {
	have := map[string]bool{}
	dumped := map[bool]bool{}
	for _, gw := range gateways {
		v6 := gw.IP.To4() == nil
		if dumped[v6] {
			continue
		}
		dumped[v6] = true
		addrs, err := a.vpp.Addresses(index, v6)
		if err != nil {
			return nil, err
		}
		for _, p := range addrs {
			have[p.String()] = true
		}
	}
	return have, nil
}

// findGateway returns the network's gateway loopback: the lowest-indexed
// one tagged for it, else an untagged one with its MAC (an interrupted ADD
// created it), else nil.
func findGateway(ifs []vppapi.Interface, network string) *vppapi.Interface {
	var untagged *vppapi.Interface
	for i := range ifs {
		if !isGatewayLoopback(ifs[i], network) {
			continue
		}
		if ifs[i].Tag != "" {
			return &ifs[i]
		}
		if untagged == nil {
			untagged = &ifs[i]
		}
	}
	return untagged
}

// deleteGateway is the rollback of the loopback an ADD created (gw nil) or
// of a gateway address it added to an existing one. Under the network
// lock, it does nothing when the loopback is gone (or its index is now
// another interface's) or when an interface is unnumbered to it: another
// attachment uses it.
func (a *addition) deleteGateway(index uint32, gw *net.IPNet) error {
	lock, err := lockNetwork(a.conf.StateDir, a.conf.Name)
	if err != nil {
		return err
	}
	defer lock.Unlock(true)
	ifs, err := a.vpp.Interfaces()
	if err != nil {
		return err
	}
	var found bool
	for _, i := range ifs {
		found = found || (i.Index == index && isGatewayLoopback(i, a.conf.Name))
	}
	if !found {
		return nil
	}
	users, err := a.vpp.Unnumbered()
	if err != nil {
		return err
	}
	for borrower, source := range users {
		if source == index {
			a.log.Info("keeping the gateway loopback: an interface uses it", "sw_if_index", index, "user", borrower)
			return nil
		}
	}
	if gw != nil {
		return a.vpp.DeleteAddress(index, gw)
	}
	return a.vpp.DeleteLoopback(index)
}

// detachL3 removes, best effort, the l3 configuration of the attachment
// interfaces indexes before they are deleted: the routes via them, then
// their unnumbered setting. With known, the routes are the host routes to
// guests via each interface (from the record); without (no record), they
// are found by dumping table 0. Missing routes and settings are success.
func detachL3(c *vppapi.Client, indexes []uint32, guests []net.IP, known bool, log *slog.Logger) error {
	if len(indexes) == 0 {
		return nil
	}
	var routes []vppapi.Route
	var errs []error
	if known {
		for _, index := range indexes {
			for _, g := range guests {
				routes = append(routes, vppapi.HostRoute(index, g))
			}
		}
	} else {
		ours := map[uint32]bool{}
		for _, index := range indexes {
			ours[index] = true
		}
		for _, v6 := range []bool{false, true} {
			rs, err := c.Routes(v6)
			errs = append(errs, err)
			for _, r := range rs {
				if ours[r.Via] {
					routes = append(routes, r)
				}
			}
		}
	}
	for _, r := range routes {
		log.Info("deleting VPP host route", "prefix", r.Prefix.String(), "sw_if_index", r.Via)
		if err := c.DeleteRoutePath(r); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s via sw_if_index %d: %w", r.Prefix, r.Via, err))
		}
	}
	users, err := c.Unnumbered()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, index := range indexes {
		if source, ok := users[index]; ok {
			log.Info("unsetting VPP unnumbered", "sw_if_index", index, "source", source)
			errs = append(errs, c.UnsetUnnumbered(index, source))
		}
	}
	return errors.Join(errs...)
}
