package vpp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/socketdir"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// interfaceKind tells a vhost-user interface from a memif by VPP's naming
// ("VirtualEthernet0/0/N", "memif<socket>/<id>"), else returns fallback.
func interfaceKind(i vppapi.Interface, fallback string) string {
	switch {
	case strings.HasPrefix(i.Name, "memif"):
		return InterfaceMemif
	case strings.HasPrefix(i.Name, "VirtualEthernet"):
		return InterfaceVhostUser
	}
	return fallback
}

// removeVPPObjects deletes, best effort, the VPP interfaces tagged st.Tag
// and, for memif, the interfaces and registration of the socket file
// st.Socket (which also catches a memif an interrupted ADD created but did
// not tag yet). In l3 it first removes the tagged interfaces' host routes
// and unnumbered setting (see detachL3; routesKnown: st.GuestIPs comes
// from a record). Missing objects are success.
func removeVPPObjects(c *vppapi.Client, st *state, routesKnown bool, log *slog.Logger) error {
	ifs, err := c.Interfaces()
	if err != nil {
		return err
	}
	var tagged []vppapi.Interface
	for _, i := range ifs {
		if i.Tag == st.Tag {
			tagged = append(tagged, i)
		}
	}
	var errs []error
	if st.Network == NetworkL3 {
		errs = append(errs, detachL3(c, indexes(tagged), guestIPs(st), routesKnown, log))
	}
	memifs := map[uint32]bool{}
	for _, i := range tagged {
		if interfaceKind(i, st.Interface) == InterfaceMemif {
			memifs[i.Index] = true
			continue
		}
		log.Info("deleting VPP vhost-user interface", "sw_if_index", i.Index, "name", i.Name)
		if err := c.DeleteVhostUser(i.Index); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Interface == InterfaceMemif || len(memifs) > 0 {
		errs = append(errs, removeMemifs(c, memifs, st.Socket, log))
	}
	return errors.Join(errs...)
}

func indexes(ifs []vppapi.Interface) []uint32 {
	var out []uint32
	for _, i := range ifs {
		out = append(out, i.Index)
	}
	return out
}

// guestIPs parses st.GuestIPs, skipping unparsable entries.
func guestIPs(st *state) []net.IP {
	var out []net.IP
	for _, s := range st.GuestIPs {
		if ip := net.ParseIP(s); ip != nil {
			out = append(out, ip)
		}
	}
	return out
}

// removeMemifs deletes the memif interfaces in targets and those on the
// registration(s) of socket (when not empty), then every registration
// they leave unused (never socket id 0, VPP's default).
func removeMemifs(c *vppapi.Client, targets map[uint32]bool, socket string, log *slog.Logger) error {
	sockets, err := c.MemifSockets()
	if err != nil {
		return err
	}
	ours := map[uint32]bool{}
	for id, path := range sockets {
		if socket != "" && path == socket {
			ours[id] = true
		}
	}
	all, err := c.Memifs()
	if err != nil {
		return err
	}
	var errs []error
	used := map[uint32]bool{}
	for _, m := range all {
		if !targets[m.Index] && !ours[m.SocketID] {
			used[m.SocketID] = true
			continue
		}
		log.Info("deleting VPP memif interface", "sw_if_index", m.Index, "socket_id", m.SocketID)
		if err := c.DeleteMemif(m.Index); err != nil {
			errs = append(errs, err)
			used[m.SocketID] = true
			continue
		}
		ours[m.SocketID] = true
	}
	for id := range ours {
		if id == 0 || used[id] {
			continue
		}
		if _, registered := sockets[id]; !registered {
			continue
		}
		log.Info("deleting VPP memif socket registration", "socket_id", id, "path", sockets[id])
		if err := c.DeleteMemifSocket(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// assume is what DEL removes without a record: derived from the config
// (tag, socket paths, IPAM); l3 host routes are then found by dumping
// routes.
func assume(conf *NetConf, args *skel.CmdArgs) (*state, error) {
	pth, err := socketPaths(conf, args.ContainerID, args.IfName)
	if err != nil {
		return nil, err
	}
	return &state{
		Interface: conf.Interface, Network: conf.Network, Tag: Tag(conf.Name, args.ContainerID, args.IfName),
		SocketDir: pth.Dir, Socket: pth.Socket, IPAM: conf.IPAM.Type,
	}, nil
}

// teardown is DEL's work for one attachment, best effort: VPP's objects
// (when VPP runs: without it they are gone) and the socket directory. In
// l3 it holds the network lock meanwhile (holdL3Lock).
func teardown(_ context.Context, t *plugin.Teardown[*NetConf, state]) {
	release, err := holdL3Lock(t.Conf, t.State.Network)
	t.Step(err)
	defer release()
	if client := clientOf(t.Conn); client != nil {
		t.Step(removeVPPObjects(client, t.State, t.Recorded, t.Log))
	}
	t.Step(socketdir.Remove(t.State.paths()))
}

// holdL3Lock takes the l3 network's lock (lockNetwork) while DEL or GC
// detaches interfaces from the gateway loopback, as ADD and its rollback
// do; its release removes the lock file. So a lock file left by an ADD
// killed while holding it goes with the next DEL or GC of the network.
// Other networks get a no-op; so does a lock that cannot be taken (the
// error is returned, the teardown goes on).
func holdL3Lock(conf *NetConf, network string) (release func(), err error) {
	if network != NetworkL3 {
		return func() {}, nil
	}
	lock, err := lockNetwork(conf.StateDir, conf.Name)
	if err != nil {
		return func() {}, err
	}
	return func() { lock.Unlock(true) }, nil
}

// sweep deletes the VPP interfaces tagged for the network whose
// attachment is neither valid nor recorded (leftovers of lost records), in
// l3 after their host routes (found by dumping routes) and unnumbered
// setting. Untagged interfaces, other networks' and the l3 gateway
// loopback never match. Records are listed after the dump: an ADD writes
// its record before it creates its interface, so an ADD in progress is
// never swept.
func sweep(_ context.Context, g *plugin.Collection[*NetConf]) error {
	c, conf, log := clientOf(g.Conn), g.Conf, g.Log
	release, err := holdL3Lock(conf, conf.Network)
	if err != nil {
		return err
	}
	defer release()
	if c == nil {
		return nil
	}
	ifs, err := c.Interfaces()
	if err != nil {
		return err
	}
	records, err := g.Store.List(conf.Name)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for a := range g.Valid {
		keep[attachmentHash(a.ContainerID, a.IfName)] = true
	}
	for _, rec := range records {
		keep[attachmentHash(rec.ContainerID, rec.IfName)] = true
	}
	network := networkHash(conf.Name)
	var stale []vppapi.Interface
	for _, i := range ifs {
		if t, ok := parseTag(i.Tag); ok && t.network == network && !keep[t.attachment] {
			stale = append(stale, i)
		}
	}
	var errs []error
	if conf.Network == NetworkL3 {
		errs = append(errs, detachL3(c, indexes(stale), nil, false, log))
	}
	memifs := map[uint32]bool{}
	for _, i := range stale {
		if interfaceKind(i, conf.Interface) == InterfaceMemif {
			memifs[i.Index] = true
			continue
		}
		log.Info("deleting stale VPP vhost-user interface", "sw_if_index", i.Index, "tag", i.Tag)
		if err := c.DeleteVhostUser(i.Index); err != nil {
			errs = append(errs, err)
		}
	}
	if len(memifs) > 0 {
		errs = append(errs, removeMemifs(c, memifs, "", log))
	}
	return errors.Join(errs...)
}
