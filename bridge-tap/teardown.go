package bridgetap

import (
	"context"
	"errors"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/masq"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/plugin"
)

func ignoreGone(err error) error {
	if errors.Is(err, netns.ErrGone) {
		return nil
	}
	return err
}

// removeRedirectByName removes vmcni's redirect from the ingress of the
// link called name (see link.RemoveRedirect); a missing link is success.
func removeRedirectByName(name string, shared bool) error {
	l, err := link.ByName(name)
	if link.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return link.RemoveRedirect(l, shared)
}

// assume is what DEL removes without a record: the links the names of
// this attachment point at (a vanished netns took its links with it), and
// the pod interface's MAC from prevResult (chained).
func assume(conf *NetConf, args *skel.CmdArgs) (*state, error) {
	s := &state{
		Mode: conf.Mode, Chained: !conf.standaloneConfig(),
		Names: namesFor(args.ContainerID, args.IfName, conf.Mode, conf.standaloneConfig()),
		Group: groupFor(args.IfName),
	}
	if conf.Prev != nil {
		for _, iface := range conf.Prev.Interfaces {
			if iface.Name == args.IfName && iface.Sandbox != "" {
				s.PodMAC = iface.Mac
			}
		}
	}
	return s, nil
}

// teardown is DEL's work for one attachment, best effort: every step runs,
// missing things count as removed. Link deletions dominate DEL (each waits
// for RCU grace periods), and the steps are independent: they run
// concurrently.
func teardown(_ context.Context, t *plugin.Teardown[*NetConf, state]) {
	st, key := t.State, t.Key
	names := st.Names
	var wg sync.WaitGroup
	async := func(step func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Step(step())
		}()
	}
	podNetns := t.PodNetns()
	inPod := func(fn func() error) func() error {
		return func() error { return ignoreGone(netns.Do(podNetns, fn)) }
	}
	// The host veth goes after the pod netns' group, which takes it along
	// in the same batch (one RCU wait instead of two); by name it is then
	// only a check, and the whole removal when the netns is gone.
	deleteHostVeth := func() error { return nil }
	if !st.Chained {
		deleteHostVeth = func() error { return link.DeleteByName(names.HostVeth) }
	}
	if podNetns != "" {
		async(func() error {
			// One batch for the tap / bridge / macvtap (and, standalone, the
			// pod veth with its host peer); then make sure by name, for
			// records that predate groups or links that lost theirs.
			err := inPod(func() error {
				stepErrs := []error{link.DeleteGroup(st.Group)}
				for _, name := range []string{names.Tap, names.Macvtap, names.NetnsBridge} {
					if name != "" {
						stepErrs = append(stepErrs, link.DeleteByName(name))
					}
				}
				return errors.Join(stepErrs...)
			})()
			return errors.Join(err, deleteHostVeth())
		})
		if st.Chained {
			async(inPod(func() error {
				err := removeRedirectByName(names.Pod, st.PodIngressShared)
				if st.Mode != ModeTCFilter {
					err = errors.Join(err, link.RestoreMAC(names.Pod, st.PodMAC))
				}
				return err
			}))
		}
	} else {
		async(deleteHostVeth)
	}
	if !st.Chained && t.Conf.IPMasq {
		async(func() error {
			return masq.Remove(masq.Rule{Network: t.Conf.Name, ContainerID: key.ContainerID, IfName: key.IfName})
		})
	}
	wg.Wait()
}
