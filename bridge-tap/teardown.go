package bridgetap

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/masq"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
	"github.com/vmcni/vmcni/internal/store"
)

func ignoreGone(err error) error {
	if errors.Is(err, netns.ErrGone) {
		return nil
	}
	return err
}

func removeIngressByName(name string) error {
	l, err := link.ByName(name)
	if link.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return link.RemoveIngress(l)
}

func restoreMAC(name string, mac net.HardwareAddr) error {
	l, err := link.ByName(name)
	if link.IsNotFound(err) || mac == nil {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Attrs().HardwareAddr.String() == mac.String() {
		return nil
	}
	return link.SetMAC(l, mac)
}

// teardown is DEL's work for one attachment, best effort: every step runs,
// missing things count as removed, and the errors are joined. conf is the
// attachment's config (from the record when there is one), st what ADD
// recorded or, without a record, what it would have created.
type teardown struct {
	conf  *NetConf
	st    *state
	key   ipam.Attachment
	store *store.Store
	log   *slog.Logger
}

func (t *teardown) run(ctx context.Context) error {
	names := t.st.Names
	td := plugin.BeginTeardown(t.log, t.conf.StateDir, t.key.ContainerID, t.key.IfName, t.st.DeviceInfoFile)

	// Link deletions dominate DEL (each waits for RCU grace periods), and
	// the steps below are independent: run them concurrently.
	var wg sync.WaitGroup
	async := func(step func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			td.Step(step())
		}()
	}
	inPod := func(fn func() error) func() error {
		return func() error { return ignoreGone(netns.Do(t.key.Netns, fn)) }
	}
	if t.key.Netns != "" {
		async(inPod(func() error {
			// One batch for the tap / bridge / macvtap (and, standalone, the
			// pod veth with its host peer); then make sure by name, for
			// records that predate groups or links that lost theirs.
			stepErrs := []error{link.DeleteGroup(t.st.Group)}
			for _, name := range []string{names.Tap, names.Macvtap, names.NetnsBridge} {
				if name != "" {
					stepErrs = append(stepErrs, link.DeleteByName(name))
				}
			}
			return errors.Join(stepErrs...)
		}))
		if t.st.Chained {
			async(inPod(func() error {
				err := removeIngressByName(names.Pod)
				if mac, perr := net.ParseMAC(t.st.PodMAC); perr == nil && t.st.Mode != ModeTCFilter {
					err = errors.Join(err, restoreMAC(names.Pod, mac))
				}
				return err
			}))
		}
	}
	if !t.st.Chained {
		async(func() error { return link.DeleteByName(names.HostVeth) })
		if t.conf.IPMasq {
			async(func() error {
				return masq.Remove(masq.Rule{Network: t.conf.Name, ContainerID: t.key.ContainerID, IfName: t.key.IfName})
			})
		}
		if t.conf.IPAM.Type != "" {
			async(func() error { return ipam.Delegate{Type: t.conf.IPAM.Type, Config: t.conf.Raw}.Del(ctx, t.key) })
		}
	}
	wg.Wait()
	return td.Finish(t.store, t.key.ContainerID, t.key.IfName)
}

// teardownRecord runs DEL for a recorded attachment (GC, interrupted ADD).
func (p *Plugin) teardownRecord(rec *store.Record, log *slog.Logger) error {
	conf, err := ParseConfig(rec.Config, rec.Args)
	if err != nil {
		return err
	}
	st, err := stateOf(rec)
	if err != nil {
		return err
	}
	t := &teardown{
		conf: conf, st: st, log: log, store: store.New(conf.StateDir),
		key: ipam.Attachment{ContainerID: rec.ContainerID, Netns: rec.Netns, IfName: rec.IfName, Args: rec.Args},
	}
	return t.run(context.Background())
}
