package plugin

import (
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
)

// RecoverInterrupted runs before an ADD touches anything: a complete record
// for the attachment means it exists already (code 7); an incomplete one is
// what an interrupted ADD left, and teardown undoes it.
func RecoverInterrupted(st *store.Store, args *skel.CmdArgs, log *slog.Logger, teardown func(*store.Record) error) error {
	rec, err := st.Get(args.ContainerID, args.IfName)
	if err != nil || rec == nil {
		return err
	}
	if rec.Complete {
		return cnierr.Config("attachment %q/%q already exists on network %q", args.ContainerID, args.IfName, rec.Network)
	}
	log.Warn("cleaning up an interrupted ADD", "netns", rec.Netns)
	return teardown(rec)
}

// Conclude ends an ADD's side effects: with err nil it commits u; else it
// rolls u back — unless WithoutRollback asked to keep the partial
// attachment, as a crash would — and returns err joined with the
// rollback's errors.
func (h *Harness) Conclude(err error, u *undo.Stack, log *slog.Logger) error {
	if err == nil {
		u.Commit()
		return nil
	}
	if h.keepPartial {
		log.Error("ADD failed, leaving the partial attachment (no rollback)", "err", err)
		return err
	}
	log.Error("ADD failed, rolling back", "err", err)
	if rbErr := u.Rollback(); rbErr != nil {
		log.Error("rollback incomplete", "err", rbErr)
		return errors.Join(err, rbErr)
	}
	return err
}
