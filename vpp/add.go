package vpp

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// addition is one ADD in progress.
type addition struct {
	p     *Plugin
	conf  *NetConf
	args  *skel.CmdArgs
	log   *slog.Logger
	store *store.Store
	rec   *store.Record
	st    *state
	paths paths
	gid   int
	vpp   *vppapi.Client
	undo  undo.Stack
	// index is the sw_if_index of the interface this ADD created.
	index uint32
}

// Add implements CNI ADD. Everything that can be checked without side
// effects is checked first: config, socket paths (sun_path, socketDir),
// group, VPP reachability and binapi compatibility.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.ValidateForAdd(); err != nil {
		return err
	}
	pth, err := socketPaths(conf, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	gid, err := lookupGroup(conf.Group)
	if err != nil {
		return err
	}
	at, err := plugin.OpenAttachment(PluginName, "ADD", conf.Config, conf.StateDir, args)
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	succeeded := false
	defer func() { at.Close(!succeeded) }()

	ctx := context.Background()
	client, err := p.dial(ctx, conf)
	if err != nil {
		return addError(err)
	}
	defer client.Close()

	if err = p.recoverStale(ctx, st, client, args, log); err != nil {
		return err
	}
	a := &addition{p: p, conf: conf, args: args, log: log, store: st, paths: pth, gid: gid, vpp: client}
	res, err := a.run(ctx)
	if err = p.Conclude(err, &a.undo, log); err != nil {
		succeeded = p.KeepPartial() // keep the lock file, as a crash would
		return err
	}
	succeeded = true
	log.Info("ADD done", "interface", conf.Interface, "network", conf.Network, "sw_if_index", a.index)
	return p.PrintResult(res, conf.CNIVersion)
}

// recoverStale tears down what an earlier, interrupted ADD of the same
// attachment left (its record is there but was never completed).
func (p *Plugin) recoverStale(ctx context.Context, st *store.Store, client *vppapi.Client, args *skel.CmdArgs, log *slog.Logger) error {
	return plugin.RecoverInterrupted(st, args, log, func(rec *store.Record) error {
		return p.teardownRecord(ctx, client, rec, log)
	})
}

func (a *addition) step(name string) error {
	a.log.Debug("done", "step", name)
	return a.p.Step(name)
}

func (a *addition) run(ctx context.Context) (*current.Result, error) {
	conf, args := a.conf, a.args
	a.st = &state{
		Interface: conf.Interface, Network: conf.Network, Tag: Tag(conf.Name, args.ContainerID, args.IfName),
		SocketDir: a.paths.Dir, Socket: a.paths.Socket, GuestMAC: a.guestMAC().String(),
		IPAM: conf.IPAM.Type, DeviceInfoFile: conf.RuntimeConfig.DeviceInfoFile,
	}
	if conf.Network == NetworkL2 {
		a.st.BridgeDomain = conf.BridgeDomain
	}
	a.rec = &store.Record{
		Plugin: PluginName, Network: conf.Name, ContainerID: args.ContainerID,
		IfName: args.IfName, Netns: args.Netns, Config: conf.Raw, Args: args.Args,
	}
	if err := a.saveRecord(); err != nil {
		return nil, err
	}
	a.undo.Push("delete record", func() error { return a.store.Delete(args.ContainerID, args.IfName) })
	if err := a.step("record"); err != nil {
		return nil, err
	}

	res, err := a.allocate(ctx)
	if err != nil {
		return nil, err
	}
	l3, err := a.l3Addresses(res)
	if err != nil {
		return nil, err
	}
	if a.conf.Network == NetworkL3 {
		// before any VPP object: DEL finds the host routes through these
		for _, g := range l3.guests {
			a.st.GuestIPs = append(a.st.GuestIPs, g.String())
		}
		if err = a.saveRecord(); err != nil {
			return nil, err
		}
	}
	if err = makeSocketDir(a.paths, a.gid, a.conf.dirMode); err != nil {
		return nil, err
	}
	a.undo.Push("remove socket directory", func() error { return removeSocketDir(a.paths) })
	if err = a.step("socket-dir"); err != nil {
		return nil, err
	}
	if err = a.plumbVPP(l3); err != nil {
		return nil, err
	}
	return a.report(res)
}

// allocate runs IPAM ADD when the config has IPAM; without it the result
// has no addresses.
func (a *addition) allocate(ctx context.Context) (*current.Result, error) {
	if a.conf.IPAM.Type == "" {
		return &current.Result{CNIVersion: current.ImplementedSpecVersion}, nil
	}
	d := ipamDelegate(a.conf, a.args.StdinData)
	res, err := d.Add(ctx, a.attachment())
	if err != nil {
		return nil, err
	}
	a.undo.Push("release IPAM addresses", func() error { return d.Del(ctx, a.attachment()) })
	if err := a.step("ipam"); err != nil {
		return nil, err
	}
	return res, nil
}

// l3Addresses are, in l3, what VPP gets from the IPAM result.
type l3Addresses struct {
	// gateways are the gateway loopback's addresses: each address's
	// gateway with the address's prefix length.
	gateways []*net.IPNet
	// guests are the guest's addresses, each routed to its interface.
	guests []net.IP
}

// l3Addresses checks that every IPAM address has a gateway in its subnet
// and returns what VPP gets (nothing in l2).
func (a *addition) l3Addresses(res *current.Result) (l3Addresses, error) {
	var out l3Addresses
	if a.conf.Network != NetworkL3 {
		return out, nil
	}
	for _, ip := range res.IPs {
		if ip.Gateway == nil {
			return out, cnierr.Config("network l3: IPAM address %s has no gateway for VPP", ip.Address.String())
		}
		if !ip.Address.Contains(ip.Gateway) || ip.Gateway.Equal(ip.Address.IP) {
			return out, cnierr.Config("network l3: gateway %s must be another address of %s", ip.Gateway, ip.Address.String())
		}
		out.gateways = append(out.gateways, &net.IPNet{IP: ip.Gateway, Mask: ip.Address.Mask})
		out.guests = append(out.guests, ip.Address.IP)
	}
	return out, nil
}

// report writes the hint and the device-info file and builds the result.
func (a *addition) report(res *current.Result) (*current.Result, error) {
	conf, args := a.conf, a.args
	h := a.hint(hint.GuestFromResult(res, -1, a.st.GuestMAC, conf.MTU))
	if written, err := hint.WriteDeviceInfo(conf.RuntimeConfig.DeviceInfoFile, h); err != nil {
		return nil, fmt.Errorf("write device-info file %q: %w", conf.RuntimeConfig.DeviceInfoFile, err)
	} else if written {
		a.undo.Push("remove device-info file", func() error { return hint.RemoveDeviceInfo(conf.RuntimeConfig.DeviceInfoFile) })
		if err := a.step("device-info"); err != nil {
			return nil, err
		}
	}
	if err := hint.Write(conf.StateDir, h); err != nil {
		return nil, fmt.Errorf("write hint: %w", err)
	}
	a.undo.Push("remove hint", func() error { return hint.Remove(conf.StateDir, args.ContainerID, args.IfName) })
	if err := a.step("hint"); err != nil {
		return nil, err
	}
	if _, err := hint.AppendToResult(res, h, -1); err != nil {
		return nil, err
	}
	a.rec.Complete = true
	if err := a.saveRecord(); err != nil {
		return nil, err
	}
	return res, nil
}

// hint is the attachment's hint file content.
func (a *addition) hint(g hint.Guest) *hint.Hint {
	h := &hint.Hint{
		HintVersion: hint.Version, Plugin: PluginName, Network: a.conf.Name,
		ContainerID: a.args.ContainerID, IfName: a.args.IfName, Guest: g,
	}
	if a.conf.Interface == InterfaceMemif {
		m := a.conf.Memif
		h.Kind = hint.KindMemif
		h.Memif = &hint.Memif{Socket: a.paths.Socket, Role: m.Role, Mode: m.Mode, ID: m.ID, Queues: a.conf.Queues, RingSize: m.RingSize}
	} else {
		h.Kind = hint.KindVhostUser
		h.VhostUser = &hint.VhostUser{Socket: a.paths.Socket, Mode: a.conf.Mode, Queues: a.conf.Queues}
	}
	return h
}

func (a *addition) saveRecord() error {
	a.st.saveTo(a.rec)
	return a.store.Put(a.rec)
}

// guestMAC is the configured MAC, else a random locally administered
// unicast one, chosen once per ADD.
func (a *addition) guestMAC() net.HardwareAddr {
	if a.conf.MAC != "" {
		mac, _ := net.ParseMAC(a.conf.MAC) // validated
		return mac
	}
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func (a *addition) attachment() ipam.Attachment {
	return ipam.Attachment{ContainerID: a.args.ContainerID, Netns: a.args.Netns, IfName: a.args.IfName, Args: a.args.Args}
}

func ipamDelegate(conf *NetConf, stdin []byte) ipam.Delegate {
	return ipam.Delegate{Type: conf.IPAM.Type, Config: stdin}
}
