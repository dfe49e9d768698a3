package plugin

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/store"
)

// Teardown is one DEL (or GC, or recovery) of one attachment, as
// Spec.Teardown sees it. It is best effort: every step runs, each failure
// is logged and kept, and the record goes last, only when every step
// succeeded, so that a retried DEL or GC can finish the job. Step is safe
// for concurrent use.
type Teardown[C Config, S any] struct {
	// Conf is the attachment's config: ADD's, from the record, when there
	// is one.
	Conf C
	// Key is the attachment (and CNI_ARGS, netns) as ADD saw it.
	Key ipam.Attachment
	// State is what ADD recorded or, without a record, what Spec.Assume
	// derived.
	State *S
	// Recorded reports whether State comes from a record.
	Recorded bool
	Log      *slog.Logger
	Conn     Conn

	// netnsGone: Key.Netns no longer names the pod's namespace.
	netnsGone bool
	// leases are the record's in-process IPAM leases (nil: unknown).
	leases []string
	mu     sync.Mutex // guards errs
	errs   []error
}

// PodNetns is the pod's namespace to enter: Key.Netns, or "" when the
// recorded path now names another namespace (the pod's is gone, and its
// links with it). Key.Netns stays as recorded (it identifies the
// attachment).
func (t *Teardown[C, S]) PodNetns() string {
	if t.netnsGone {
		return ""
	}
	return t.Key.Netns
}

// Step records one step's outcome.
func (t *Teardown[C, S]) Step(err error) {
	if err == nil {
		return
	}
	t.Log.Warn("DEL step failed", "err", err)
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
}

// finish deletes the attachment's record from st when every step
// succeeded, and returns the failed steps' errors joined.
func (t *Teardown[C, S]) finish(st *store.Store) error {
	t.mu.Lock()
	ok := len(t.errs) == 0
	t.mu.Unlock()
	if ok {
		t.Step(st.Delete(t.Key.ContainerID, t.Key.IfName))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}
