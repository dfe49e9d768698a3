package bridgetap

import (
	"context"
	"net"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/plugin"
)

// addition is one ADD in progress.
type addition struct {
	*plugin.Addition[*NetConf, state]
	st *state

	// tapMAC is the tap's own MAC (tcfilter, bridge), for the result.
	tapMAC string
	// chardev is the macvtap's char device lookup (macvtap mode).
	chardev *background[struct{}]
	// podMACNow is the pod interface's MAC as vm-bridge left it, for the
	// result; nil when only the kernel knows (passthru macvtap).
	podMACNow net.HardwareAddr

	// standalone only
	ipam      *background[*current.Result] // IPAM ADD
	hostLinks []netlink.Link               // the host bridge and the host end of the veth
	pod       podInterface                 // as created
}

// podInterface is what vm-bridge chose for the pod interface it creates
// (standalone), so the steps after it need not look it up.
type podInterface struct {
	mac net.HardwareAddr
	mtu int
}

// background is a call running in its own goroutine.
type background[T any] struct {
	done chan struct{} // closed when val and err are set
	val  T
	err  error
}

// inBackground starts fn in a goroutine.
func inBackground[T any](fn func() (T, error)) *background[T] {
	b := &background[T]{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.val, b.err = fn()
	}()
	return b
}

// wait returns fn's outcome once it has returned; nil-safe (nothing
// started).
func (b *background[T]) wait() (T, error) {
	if b == nil {
		var zero T
		return zero, nil
	}
	<-b.done
	return b.val, b.err
}

// startIPAM runs the IPAM plugin's ADD in the background. Its undo step
// waits for it and releases the addresses (DEL after a failed ADD is what
// the CNI spec asks for, and harmless).
func (a *addition) startIPAM(ctx context.Context) {
	a.UndoRelease("release addresses", func() error {
		_, _ = a.ipam.wait()
		return a.IPAM().Del(context.Background(), a.Key())
	})
	a.ipam = inBackground(func() (*current.Result, error) {
		if err := a.Durable(); err != nil { // leases outlive a reboot
			return nil, err
		}
		return a.IPAM().Add(ctx, a.Key())
	})
}

// add is vm-bridge's ADD: the record, then (standalone) the pod interface
// while IPAM runs, the VM device, and (standalone) the pod interface's
// addresses, gateway and masquerade.
func add(ctx context.Context, pa *plugin.Addition[*NetConf, state]) (plugin.Outcome, error) {
	conf, args := pa.Conf, pa.Args
	a := &addition{Addition: pa, st: &state{
		Mode:    conf.Mode,
		Chained: conf.Chained(),
		Names:   namesFor(args.ContainerID, args.IfName, conf.Mode, !conf.Chained()),
		Bridge:  conf.Bridge,
		Group:   groupFor(args.IfName),
	}}
	// The links vanish with a reboot: they are made while the record syncs.
	if err := a.BeginDeferSync(a.st); err != nil {
		return plugin.Outcome{}, err
	}
	out, err := a.run(ctx)
	// never leave a background call running behind a failed ADD
	_, _ = a.ipam.wait()
	_, _ = a.chardev.wait()
	return out, err
}

func (a *addition) run(ctx context.Context) (plugin.Outcome, error) {
	out := plugin.Outcome{PodIf: -1}
	var err error
	if a.Conf.Chained() {
		if out.Result, out.PodIf, err = a.fromPrevResult(); err != nil {
			return out, err
		}
	} else {
		// The IPAM plugin runs while the links are made; its addresses
		// are needed only once the pod interface is configured.
		a.startIPAM(ctx)
		if err = a.createPodInterface(ctx); err != nil {
			return out, err
		}
	}
	if out.Hint, err = a.plumbVM(ctx); err != nil {
		return out, err
	}
	if !a.Conf.Chained() {
		if out.Result, out.PodIf, err = a.configurePodInterface(); err != nil {
			return out, err
		}
	}
	if err = a.waitChardev(); err != nil {
		return out, err
	}
	return out, a.completeHint(out.Hint, out.Result, out.PodIf)
}

// fromPrevResult finds CNI_IFNAME in the previous plugin's result.
func (a *addition) fromPrevResult() (*current.Result, int, error) {
	res := a.Conf.Prev
	for i, iface := range res.Interfaces {
		if iface.Name == a.Args.IfName && iface.Sandbox != "" {
			return res, i, nil
		}
	}
	return nil, -1, cnierr.Config("chained: prevResult has no interface %q inside a sandbox", a.Args.IfName)
}

// guestMAC is the MAC the guest must use: the configured one, else the pod
// interface's.
func (a *addition) guestMAC(podMAC net.HardwareAddr) net.HardwareAddr {
	if mac := a.Conf.GuestMAC(); mac != nil {
		return mac
	}
	return podMAC
}
