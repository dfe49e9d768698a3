package bridgetap

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
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
	undo  undo.Stack

	// tapMAC is the tap's own MAC (tcfilter, bridge), for the result.
	tapMAC string

	// standalone only
	ipam      *pendingIPAM
	hostLinks []netlink.Link // the host bridge and the host end of the veth
}

// pendingIPAM is an IPAM ADD running in the background.
type pendingIPAM struct {
	done chan struct{} // closed when res and err are set
	res  *current.Result
	err  error
}

// startIPAM runs the IPAM plugin's ADD in the background. Its undo step
// waits for it and releases the addresses (DEL after a failed ADD is what
// the CNI spec asks for, and harmless).
func (a *addition) startIPAM(ctx context.Context) {
	p := &pendingIPAM{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.res, p.err = a.ipamDelegate().Add(ctx, a.attachment())
	}()
	a.ipam = p
	a.undo.Push("release addresses", func() error {
		<-p.done
		return a.ipamDelegate().Del(context.Background(), a.attachment())
	})
}

// Add implements CNI ADD.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.ValidateForAdd(); err != nil {
		return err
	}
	if err = plugin.ValidateArgs(args.ContainerID, args.IfName); err != nil {
		return err
	}
	at, err := plugin.OpenAttachment(PluginName, "ADD", conf.Config, conf.StateDir, args)
	if err != nil {
		return err
	}
	log, st := at.Log, at.Store
	succeeded := false
	// A failed ADD leaves no state behind, not even its lock file.
	defer func() { at.Close(!succeeded) }()
	res, err := p.addLocked(st, conf, args, log)
	if err != nil {
		return err
	}
	succeeded = true
	log.Info("ADD done", "mode", conf.Mode, "chained", conf.Chained())
	return p.PrintResult(res, conf.CNIVersion)
}

func (p *Plugin) addLocked(st *store.Store, conf *NetConf, args *skel.CmdArgs, log *slog.Logger) (*current.Result, error) {
	if err := p.recoverStale(st, args, log); err != nil {
		return nil, err
	}
	a := &addition{p: p, conf: conf, args: args, log: log, store: st}
	res, err := a.run(context.Background())
	if a.ipam != nil {
		<-a.ipam.done // never leave an IPAM call running behind a failed ADD
	}
	if err = p.Conclude(err, &a.undo, log); err != nil {
		return nil, err
	}
	return res, nil
}

// recoverStale tears down what an earlier, interrupted ADD of the same
// attachment left (its record is there but was never completed).
func (p *Plugin) recoverStale(st *store.Store, args *skel.CmdArgs, log *slog.Logger) error {
	return plugin.RecoverInterrupted(st, args, log, func(rec *store.Record) error { return p.teardownRecord(rec, log) })
}

func (a *addition) step(name string) error {
	a.log.Debug("done", "step", name)
	return a.p.Step(name)
}

func (a *addition) run(ctx context.Context) (*current.Result, error) {
	conf, args := a.conf, a.args
	a.st = &state{
		Mode:    conf.Mode,
		Chained: conf.Chained(),
		Names:   namesFor(args.ContainerID, args.IfName, conf.Mode, !conf.Chained()),
		Bridge:  conf.Bridge,
		Group:   groupFor(args.IfName),
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

	// Standalone: the IPAM plugin runs while the links are made; its
	// addresses are needed only once the pod interface is configured.
	var res *current.Result
	podIf := -1
	var err error
	if conf.Chained() {
		if res, podIf, err = a.fromPrevResult(); err != nil {
			return nil, err
		}
	} else {
		a.startIPAM(ctx)
		if err = a.createPodInterface(); err != nil {
			return nil, err
		}
	}
	h, err := a.plumbVM()
	if err != nil {
		return nil, err
	}
	if !conf.Chained() {
		if res, podIf, err = a.configurePodInterface(); err != nil {
			return nil, err
		}
	}
	if err = a.completeHint(h, res, podIf); err != nil {
		return nil, err
	}
	if err := hint.Write(conf.StateDir, h); err != nil {
		return nil, fmt.Errorf("write hint: %w", err)
	}
	a.undo.Push("remove hint", func() error { return hint.Remove(conf.StateDir, args.ContainerID, args.IfName) })
	if err := a.step("hint"); err != nil {
		return nil, err
	}
	if _, err := hint.AppendToResult(res, h, podIf); err != nil {
		return nil, err
	}
	a.rec.Complete = true
	if err := a.saveRecord(); err != nil {
		return nil, err
	}
	return res, nil
}

func (a *addition) saveRecord() error {
	a.st.saveTo(a.rec)
	return a.store.Put(a.rec)
}

// fromPrevResult finds CNI_IFNAME in the previous plugin's result.
func (a *addition) fromPrevResult() (*current.Result, int, error) {
	res := a.conf.Prev
	podIf := -1
	for i, iface := range res.Interfaces {
		if iface.Name == a.args.IfName && iface.Sandbox != "" {
			podIf = i
			break
		}
	}
	if podIf < 0 {
		return nil, -1, cnierr.Config("chained: prevResult has no interface %q inside a sandbox", a.args.IfName)
	}
	return res, podIf, nil
}

// guestMAC is the MAC the guest must use: the configured one, else the pod
// interface's.
func (a *addition) guestMAC(podMAC net.HardwareAddr) net.HardwareAddr {
	if a.conf.MAC != "" {
		mac, _ := net.ParseMAC(a.conf.MAC) // validated
		return mac
	}
	return podMAC
}

func (a *addition) ipamDelegate() ipam.Delegate {
	return ipam.Delegate{Type: a.conf.IPAM.Type, Config: a.args.StdinData}
}

func (a *addition) attachment() ipam.Attachment {
	return ipam.Attachment{ContainerID: a.args.ContainerID, Netns: a.args.Netns, IfName: a.args.IfName, Args: a.args.Args}
}
