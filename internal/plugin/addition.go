package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/internal/undo"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Addition is one ADD in progress, as Spec.Add sees it: the config and
// arguments, and the means to record, step and undo.
type Addition[C Config, S any] struct {
	Conf C
	Args *skel.CmdArgs
	Log  *slog.Logger
	Conn Conn
	// State is what the record holds; Begin sets it, the steps fill it in
	// and Save rewrites the record.
	State *S

	engine *Engine[C, S]
	store  *store.Store
	ctx    context.Context // carries the fault hook
	rec    *store.Record
	undo   undo.Stack
	held   []func()
	// synced is closed once the first record is durable (BeginDeferSync),
	// with syncErr set; nil after Begin.
	synced  chan struct{}
	syncErr error
}

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

// Begin writes the attachment's (incomplete) record holding st: call it
// before the first side effect, with st naming everything the steps may
// create. Its undo deletes the record.
func (a *Addition[C, S]) Begin(st *S) error {
	a.newRecord(st)
	return a.Claim("record", a.deleteRecord, a.Save)
}

// BeginDeferSync is Begin for an ADD whose first side effects vanish with
// a reboot (links, qdiscs, in the pod netns or not): the record is in
// place when it returns, so a kill from then on is recovered as after
// Begin, and its fsyncs run while those side effects are made. Call
// Durable before anything that outlives a reboot (a lease, a file, an
// OVS port); Allocate, Save and the end of ADD do.
func (a *Addition[C, S]) BeginDeferSync(st *S) error {
	a.newRecord(st)
	return a.Claim("record", a.deleteRecord, func() error {
		if err := a.encodeState(); err != nil {
			return err
		}
		sync, err := a.store.PutDeferSync(a.rec)
		if err != nil {
			return err
		}
		a.synced = make(chan struct{})
		go func() {
			defer close(a.synced)
			a.syncErr = sync()
		}()
		return nil
	})
}

// Durable waits until the record BeginDeferSync wrote is on disk.
func (a *Addition[C, S]) Durable() error {
	if a.synced == nil {
		return nil
	}
	<-a.synced
	if a.syncErr != nil {
		return fmt.Errorf("sync attachment record: %w", a.syncErr)
	}
	return nil
}

func (a *Addition[C, S]) newRecord(st *S) {
	c := a.Conf.Common()
	a.State = st
	a.rec = &store.Record{
		Plugin: a.engine.spec.Name, Network: c.Name, ContainerID: a.Args.ContainerID,
		IfName: a.Args.IfName, Netns: a.Args.Netns, Config: c.Raw, Args: a.Args.Args,
	}
	a.rec.NetnsID, _ = netns.Identity(a.Args.Netns)
}

func (a *Addition[C, S]) deleteRecord() error {
	return a.store.Delete(a.Args.ContainerID, a.Args.IfName)
}

// Claim is Do for a step that takes a resource (the record, a device's
// allocation): its release is skipped when an undo registered after it
// fails, so a device that could not be restored is not handed to the next
// pod, and its record lets DEL or GC finish the job.
func (a *Addition[C, S]) Claim(step string, release func() error, take func() error) error {
	a.undo.PushRelease(step, a.guarded(step, release))
	if err := take(); err != nil {
		return err
	}
	return a.Step(step)
}

// Save rewrites the record with the current State, once the previous one
// is durable.
func (a *Addition[C, S]) Save() error {
	if a.rec == nil {
		return errors.New("plugin: Save before Begin")
	}
	if err := a.Durable(); err != nil {
		return err
	}
	if err := a.encodeState(); err != nil {
		return err
	}
	return a.store.Put(a.rec)
}

func (a *Addition[C, S]) encodeState() (err error) {
	a.rec.State, err = json.Marshal(a.State)
	return err
}

// Do runs one step of ADD: it registers undo first (so a step that fails
// half way is undone too: undo must be idempotent and harmless when the
// step did nothing), runs do, then reports the step to the fault hook.
func (a *Addition[C, S]) Do(step string, undo func() error, do func() error) error {
	if undo != nil {
		a.undo.Push(step, a.guarded(step, undo))
	}
	if err := do(); err != nil {
		return err
	}
	return a.Step(step)
}

// Undo registers fn to revert a side effect about to happen.
func (a *Addition[C, S]) Undo(name string, fn func() error) { a.undo.Push(name, a.guarded(name, fn)) }

// UndoRelease registers fn to give back a resource about to be taken,
// skipped like Claim's when a later undo fails.
func (a *Addition[C, S]) UndoRelease(name string, fn func() error) {
	a.undo.PushRelease(name, a.guarded(name, fn))
}

// UndoPoint is the fault point an undo step named name passes before it
// runs: a hook error there makes the undo fail without running (tests of
// a rollback that cannot finish).
func UndoPoint(name string) string { return "undo " + name }

// guarded makes fn fail when the fault hook fails its UndoPoint.
func (a *Addition[C, S]) guarded(name string, fn func() error) func() error {
	return func() error {
		if a.engine.hook != nil {
			if err := a.engine.hook(UndoPoint(name)); err != nil {
				return err
			}
		}
		return fn()
	}
}

// Step reports that the side effect named step is done; an error from the
// fault hook must fail the ADD there.
func (a *Addition[C, S]) Step(step string) error {
	a.Log.Debug("done", "step", step)
	if a.engine.hook == nil {
		return nil
	}
	return a.engine.hook(step)
}

// Hold registers release to run when the ADD is over, after its rollback:
// a lock the rollback still needs.
func (a *Addition[C, S]) Hold(release func()) { a.held = append(a.held, release) }

// Key is the attachment as IPAM sees it.
func (a *Addition[C, S]) Key() ipam.Attachment { return keyOf(a.Args) }

// IPAM is the attachment's IPAM plugin (Spec.IPAM), nil-safe for State.
func (a *Addition[C, S]) IPAM() ipam.Delegate {
	return a.engine.ipamFor(a.Conf, a.State, a.Args.StdinData, nil)
}

// Allocate runs IPAM ADD with its release registered first. It returns a
// result without addresses when the attachment has no IPAM.
func (a *Addition[C, S]) Allocate(ctx context.Context) (*current.Result, error) {
	d := a.IPAM()
	if d.Type == "" {
		return &current.Result{CNIVersion: current.ImplementedSpecVersion}, nil
	}
	if err := a.Durable(); err != nil { // leases outlive a reboot
		return nil, err
	}
	var res *current.Result
	err := a.Claim("ipam", func() error {
		if res != nil && d.InProcess() {
			d.Leases = ipam.Leases(res) // (ADD's last save records them)
		}
		return d.Del(context.Background(), a.Key())
	}, func() error {
		var err error
		if res, err = d.Add(ctx, a.Key()); err == nil && d.InProcess() {
			a.rec.Leases = ipam.Leases(res)
		}
		return err
	})
	return res, err
}

// run is ADD's work under the attachment's lock.
func (a *Addition[C, S]) run(ctx context.Context) (*current.Result, error) {
	out, err := a.engine.spec.Add(ctx, a)
	if err != nil {
		return nil, err
	}
	if a.rec == nil {
		return nil, errors.New("plugin: ADD steps never called Begin")
	}
	if h := out.Hint; h != nil {
		if err = a.publish(h, out); err != nil {
			return nil, err
		}
	}
	a.rec.Complete = true
	return out.Result, a.Save()
}

// publish completes the hint, writes the device-info file (when asked)
// and the hint file, and appends the hint to the result.
func (a *Addition[C, S]) publish(h *hint.Hint, out Outcome) error {
	if err := a.Durable(); err != nil { // the hint file outlives a reboot
		return err
	}
	c := a.Conf.Common()
	h.HintVersion, h.Plugin, h.Network = hint.Version, a.engine.spec.Name, c.Name
	h.ContainerID, h.IfName = a.Args.ContainerID, a.Args.IfName
	if file := c.RuntimeConfig.DeviceInfoFile; out.DeviceInfo && file != "" {
		a.rec.DeviceInfoFile = file
		err := a.Do("device-info", func() error { return hint.RemoveDeviceInfo(file) }, func() error {
			if err := a.Save(); err != nil { // recorded first: DEL after a crash removes it
				return err
			}
			if _, err := hint.WriteDeviceInfo(file, h); err != nil {
				return fmt.Errorf("write device-info file %q: %w", file, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if dir := c.KataDanDir; dir != "" {
		if err := a.publishDan(dir, h); err != nil {
			return err
		}
	}
	a.rec.Hint = true
	err := a.Do("hint", func() error { return hint.Remove(c.StateDir, a.Args.ContainerID, a.Args.IfName) }, func() error {
		if err := hint.Write(c.StateDir, h); err != nil {
			return fmt.Errorf("write hint: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = hint.AppendToResult(out.Result, h, out.PodIf)
	return err
}

// publishDan puts the attachment's entry in the Kata DAN file of its
// sandbox (the recorded config names the directory, so DEL after a crash
// takes it out).
func (a *Addition[C, S]) publishDan(dir string, h *hint.Hint) error {
	dev, err := hint.DanDeviceFor(h, a.Args.IfName)
	if err != nil {
		return cnierr.Config("kataDanDir: %w", err)
	}
	id, ifName := a.Args.ContainerID, a.Args.IfName
	return a.Do("kata-dan", func() error { return hint.RemoveDanDevice(dir, id, ifName) }, func() error {
		if err := hint.AddDanDevice(dir, id, h.Netns, dev); err != nil {
			return fmt.Errorf("write Kata DAN file: %w", err)
		}
		return nil
	})
}

// conclude ends an ADD's side effects: with err nil it commits; else it
// rolls back — unless WithoutRollback asked to keep the partial
// attachment, as a crash would — and returns err joined with the
// rollback's errors. Held resources are released last.
func (a *Addition[C, S]) conclude(err error) error {
	err = errors.Join(err, a.Durable()) // (a failed sync fails the ADD)
	defer func() {
		for i := len(a.held) - 1; i >= 0; i-- {
			a.held[i]()
		}
	}()
	if err == nil {
		a.undo.Commit()
		return nil
	}
	if a.engine.keepPartial {
		a.Log.Error("ADD failed, leaving the partial attachment (no rollback)", "err", err)
		return err
	}
	a.Log.Error("ADD failed, rolling back", "err", err)
	if rbErr := a.undo.Rollback(); rbErr != nil {
		a.Log.Error("rollback incomplete", "err", rbErr)
		return errors.Join(err, rbErr)
	}
	return err
}
