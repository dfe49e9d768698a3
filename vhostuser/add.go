package vhostuser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Add implements CNI ADD.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, paths, at, err := open(args, "ADD")
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	succeeded := false
	defer func() { at.Close(!succeeded) }()

	if err = plugin.RecoverInterrupted(st, args, log, func(rec *store.Record) error { return p.teardownRecord(rec, log) }); err != nil {
		return err
	}

	a := &addition{p: p, conf: conf, args: args, log: log, store: st, sw: p.newSwitch(conf)}
	res, err := a.run(context.Background(), paths)
	if err = p.Conclude(err, &a.undo, log); err != nil {
		return err
	}
	succeeded = true
	return p.PrintResult(res, conf.CNIVersion)
}

// addition is one ADD in progress.
type addition struct {
	p     *Plugin
	conf  *NetConf
	args  *skel.CmdArgs
	log   *slog.Logger
	store *store.Store
	sw    Switch
	rec   *store.Record
	st    *state
	undo  undo.Stack
}

func (a *addition) step(name string) error {
	a.log.Debug("done", "step", name)
	return a.p.Step(name)
}

func (a *addition) run(ctx context.Context, paths Paths) (*current.Result, error) {
	conf, args := a.conf, a.args
	guestMAC := conf.MAC
	if guestMAC == "" {
		guestMAC = link.RandomMAC().String()
	}
	a.st = &state{Paths: paths, GuestMAC: guestMAC, DeviceInfoFile: conf.RuntimeConfig.DeviceInfoFile}
	if conf.Backend == BackendOVSDPDK {
		a.st.Port = portName(args.ContainerID, args.IfName)
	}
	a.rec = &store.Record{
		Plugin: PluginName, Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName,
		Netns: args.Netns, Config: conf.Raw, Args: args.Args,
	}
	a.st.saveTo(a.rec)
	if err := a.store.Put(a.rec); err != nil {
		return nil, err
	}
	a.undo.Push("delete record", func() error { return a.store.Delete(args.ContainerID, args.IfName) })
	if err := a.step("record"); err != nil {
		return nil, err
	}

	if err := a.makeDir(paths.Dir); err != nil {
		return nil, err
	}
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if conf.IPAM.Type != "" {
		ipamRes, err := a.ipam().Add(ctx, a.attachment())
		if err != nil {
			return nil, err
		}
		a.undo.Push("release addresses", func() error { return a.ipam().Del(context.Background(), a.attachment()) })
		if err := a.step("ipam"); err != nil {
			return nil, err
		}
		res = ipamRes
		res.CNIVersion = current.ImplementedSpecVersion
		for _, ip := range res.IPs {
			ip.Interface = nil // they belong to the pseudo-interface
		}
	}
	if conf.Backend == BackendOVSDPDK {
		port := Port{
			Name: a.st.Port, Socket: paths.Socket, Queues: conf.Queues, MTU: conf.MTU, VLAN: conf.VLAN,
			Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName,
		}
		err := a.sw.AddPort(ctx, port)
		a.undo.Push("delete OVS port", func() error { return a.sw.DelPort(context.Background(), port.Name) })
		if err != nil {
			return nil, err
		}
		if err := a.step("port"); err != nil {
			return nil, err
		}
	}

	h := &hint.Hint{
		HintVersion: hint.Version, Plugin: PluginName, Network: conf.Name,
		ContainerID: args.ContainerID, IfName: args.IfName, Kind: hint.KindVhostUser,
		VhostUser: &hint.VhostUser{Socket: paths.Socket, Mode: conf.Mode, Queues: conf.Queues},
		Guest:     hint.GuestFromResult(res, -1, guestMAC, conf.MTU),
	}
	if err := hint.Write(conf.StateDir, h); err != nil {
		return nil, fmt.Errorf("write hint: %w", err)
	}
	a.undo.Push("remove hint", func() error { return hint.Remove(conf.StateDir, args.ContainerID, args.IfName) })
	if err := a.step("hint"); err != nil {
		return nil, err
	}
	if wrote, err := hint.WriteDeviceInfo(conf.RuntimeConfig.DeviceInfoFile, h); err != nil {
		return nil, fmt.Errorf("write device-info file: %w", err)
	} else if wrote {
		a.undo.Push("remove device-info", func() error { return hint.RemoveDeviceInfo(conf.RuntimeConfig.DeviceInfoFile) })
		if err := a.step("device-info"); err != nil {
			return nil, err
		}
	}
	if _, err := hint.AppendToResult(res, h, -1); err != nil {
		return nil, err
	}
	a.rec.Complete = true
	if err := a.store.Put(a.rec); err != nil {
		return nil, err
	}
	return res, nil
}

// makeDir creates the attachment's directory with the configured mode and
// group (the socket directory itself 0755 when missing).
func (a *addition) makeDir(dir string) error {
	if err := os.MkdirAll(a.conf.SocketDir, 0o755); err != nil {
		return fmt.Errorf("create socketDir: %w", err)
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		return cnierr.Config("attachment directory %q already exists and is not ours", dir)
	}
	if err != nil {
		return fmt.Errorf("create %q: %w", dir, err)
	}
	a.undo.Push("remove socket directory", func() error { return os.RemoveAll(dir) })
	if err := os.Chown(dir, 0, a.conf.gid); err != nil {
		return fmt.Errorf("chown %q: %w", dir, err)
	}
	if err := os.Chmod(dir, os.FileMode(a.conf.mode)); err != nil {
		return fmt.Errorf("chmod %q: %w", dir, err)
	}
	return a.step("directory")
}

func (a *addition) ipam() ipam.Delegate {
	return ipam.Delegate{Type: a.conf.IPAM.Type, Config: a.args.StdinData}
}

func (a *addition) attachment() ipam.Attachment {
	return ipam.Attachment{ContainerID: a.args.ContainerID, Netns: a.args.Netns, IfName: a.args.IfName, Args: a.args.Args}
}
