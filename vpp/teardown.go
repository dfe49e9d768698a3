package vpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
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

// teardown is DEL's work for one attachment, best effort: every step runs,
// missing things count as removed, and the errors are joined. The record
// is deleted only when every step succeeded, so a retried DEL or GC can
// finish the job.
type teardown struct {
	conf  *NetConf
	st    *state
	key   ipam.Attachment
	store *store.Store
	log   *slog.Logger
	// vpp is nil when VPP is not running (its objects are gone).
	vpp *vppapi.Client
	// recorded: st comes from the attachment's record (else DEL derived it
	// from the config, and l3 host routes are found by dumping routes).
	recorded bool
}

func (t *teardown) run(ctx context.Context) error {
	td := plugin.BeginTeardown(t.log, t.conf.StateDir, t.key.ContainerID, t.key.IfName, t.st.DeviceInfoFile)
	if t.vpp != nil {
		td.Step(removeVPPObjects(t.vpp, t.st, t.recorded, t.log))
	}
	td.Step(removeSocketDir(paths{Dir: t.st.SocketDir, Socket: t.st.Socket}))
	if t.st.IPAM != "" {
		td.Step(ipam.Delegate{Type: t.st.IPAM, Config: t.conf.Raw}.Del(ctx, t.key))
	}
	return td.Finish(t.store, t.key.ContainerID, t.key.IfName)
}

// teardownRecord runs DEL for a recorded attachment (GC, interrupted ADD).
// client is nil when VPP is not running.
func (p *Plugin) teardownRecord(ctx context.Context, client *vppapi.Client, rec *store.Record, log *slog.Logger) error {
	conf, err := ParseConfig(rec.Config, rec.Args)
	if err != nil {
		return fmt.Errorf("record of %s: %w", attachmentName(rec.ContainerID, rec.IfName), err)
	}
	st, err := stateOf(rec)
	if err != nil {
		return fmt.Errorf("record of %s: %w", attachmentName(rec.ContainerID, rec.IfName), err)
	}
	t := &teardown{
		conf: conf, st: st, log: log, store: store.New(conf.StateDir), vpp: client, recorded: true,
		key: ipam.Attachment{ContainerID: rec.ContainerID, Netns: rec.Netns, IfName: rec.IfName, Args: rec.Args},
	}
	return t.run(ctx)
}
