package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/fault"
	"github.com/vmcni/vmcni/internal/ipam"
	"github.com/vmcni/vmcni/internal/netns"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Config is what the engine needs of a plugin's configuration: the shared
// part (embed NetConf) and a Validate without side effects that DEL, CHECK,
// GC and STATUS run (ADD also runs Spec.Admit).
type Config interface {
	Common() *NetConf
	Validate() error
}

// Conn is a connection a plugin's commands share (vm-vpp's VPP API
// client); the engine closes it when the command ends.
type Conn interface{ Close() error }

// Command names a CNI command, for Spec.Connect and the logs.
type Command string

// The commands the engine runs.
const (
	CmdAdd    Command = "ADD"
	CmdCheck  Command = "CHECK"
	CmdDel    Command = "DEL"
	CmdGC     Command = "GC"
	CmdStatus Command = "STATUS"
)

// Spec is one plugin: its config (C), what it records per attachment (S)
// and its steps. The engine does everything else (see the package doc).
// Name, Parse, Add, Teardown and Check are required.
type Spec[C Config, S any] struct {
	// Name is the binary name, written in records and hints.
	Name string
	// Parse decodes stdin and CNI_ARGS with the plugin's defaults (through
	// Decode); no side effects.
	Parse func(stdin []byte, cniArgs string) (C, error)
	// Admit (optional) checks, without side effects, what only ADD needs
	// beyond Validate: an IPAM section, a netns, a socket path that fits.
	Admit func(conf C, args *skel.CmdArgs) error
	// Connect (optional) opens the connection the command's steps share.
	// For DEL and GC it may return nil, nil: the backend is gone and with
	// it everything it held.
	Connect func(ctx context.Context, conf C, cmd Command, log *slog.Logger) (Conn, error)
	// Add runs ADD's steps on a: it calls a.Begin before its first side
	// effect and registers every undo before the effect it reverts.
	Add func(ctx context.Context, a *Addition[C, S]) (Outcome, error)
	// Assume (optional) is what DEL removes by name when there is no
	// readable record: the state an ADD with conf would have recorded. nil,
	// or an Assume that returns nil, touches nothing but the hint, the
	// device-info file and IPAM.
	Assume func(conf C, args *skel.CmdArgs) (*S, error)
	// Teardown runs DEL's steps for t.State, best effort, reporting each
	// outcome with t.Step. Missing things count as removed.
	Teardown func(ctx context.Context, t *Teardown[C, S])
	// Busy (optional) runs before any step of DEL, GC or recovery on a
	// recorded attachment: an error (cnierr.TryAgain) means a step would
	// block while something still uses the attachment (a VMM holding a
	// VFIO group); the teardown then stops with nothing changed.
	Busy func(t *Teardown[C, S]) error
	// Check compares the attachment with its record, after the engine has
	// checked the record, the hint and prevResult.
	Check func(ctx context.Context, c *Checking[C, S]) error
	// Status (optional) reports whether ADD can succeed (code 50 if not),
	// after the engine checked the state dir.
	Status func(ctx context.Context, conf C) error
	// Sweep (optional) runs at the end of GC's teardowns: it removes the
	// plugin's objects of the network that neither a valid attachment nor
	// a record owns.
	Sweep func(ctx context.Context, g *Collection[C]) error
	// IPAM (optional) names the IPAM plugin of an attachment (st is nil
	// when unknown); "" for none. Defaults to the config's ipam.type.
	IPAM func(conf C, st *S) string
}

// Outcome is what a plugin's ADD steps produced: the result, the hint
// (the engine completes it, writes it and appends it to the result; nil
// when the attachment has no VM device) and the index of the pod
// interface in the result (-1 for none).
type Outcome struct {
	Result *current.Result
	Hint   *hint.Hint
	PodIf  int
	// DeviceInfo asks the engine to write the NPWG device-info file.
	DeviceInfo bool
}

// Engine runs one plugin's CNI commands.
type Engine[C Config, S any] struct {
	spec        Spec[C, S]
	stdout      io.Writer
	hook        fault.Hook
	keepPartial bool
}

// Option configures an Engine.
type Option func(*options)

type options struct {
	stdout      io.Writer
	hook        fault.Hook
	keepPartial bool
}

// WithStepHook calls hook at each step of ADD and at each fault point
// inside one (package fault); a non-nil error makes ADD fail there.
func WithStepHook(hook func(step string) error) Option {
	return func(o *options) { o.hook = hook }
}

// WithoutRollback leaves a failed ADD's partial attachment in place, exactly
// as a crash at that point would (the record stays incomplete, and so does
// the attachment's lock file; DEL or GC must clean up). For fault-injection
// tests and post-mortem debugging.
func WithoutRollback() Option {
	return func(o *options) { o.keepPartial = true }
}

// WithStdout sends results to w instead of os.Stdout (in-process runs).
func WithStdout(w io.Writer) Option {
	return func(o *options) { o.stdout = w }
}

// New returns the engine of spec.
func New[C Config, S any](spec Spec[C, S], opts ...Option) *Engine[C, S] {
	o := options{stdout: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	return &Engine[C, S]{spec: spec, stdout: o.stdout, hook: o.hook, keepPartial: o.keepPartial}
}

// Funcs returns the command table for Main.
func (e *Engine[C, S]) Funcs() Funcs {
	return Funcs{Add: e.Add, Check: e.Check, Del: e.Del, GC: e.GC, Status: e.Status}
}

// load parses and validates the config and the attachment arguments.
func (e *Engine[C, S]) load(args *skel.CmdArgs) (C, error) {
	conf, err := e.spec.Parse(args.StdinData, args.Args)
	if err != nil {
		return conf, err
	}
	return conf, validate(conf, args)
}

func validate(conf Config, args *skel.CmdArgs) error {
	if err := conf.Validate(); err != nil {
		return err
	}
	return ValidateArgs(args.ContainerID, args.IfName)
}

func (e *Engine[C, S]) connect(ctx context.Context, conf C, cmd Command, log *slog.Logger) (Conn, func(), error) {
	if e.spec.Connect == nil {
		return nil, func() {}, nil
	}
	conn, err := e.spec.Connect(ctx, conf, cmd, log)
	if err != nil || conn == nil {
		return nil, func() {}, err
	}
	return conn, func() { _ = conn.Close() }, nil
}

func (e *Engine[C, S]) ipamOf(conf C, st *S) string {
	if e.spec.IPAM != nil {
		return e.spec.IPAM(conf, st)
	}
	return conf.Common().IPAM.Type
}

// ipamFor is an attachment's IPAM: its plugin (ipamOf) given the config on
// stdin, run as the config's ipamExec says, with the leases its record
// keeps (nil: unknown).
func (e *Engine[C, S]) ipamFor(conf C, st *S, stdin []byte, leases []string) ipam.Delegate {
	return ipam.Delegate{Type: e.ipamOf(conf, st), Config: stdin, Exec: conf.Common().IPAMExec, Leases: leases}
}

// Add implements CNI ADD: checks, the attachment's lock, recovery of an
// interrupted ADD, the plugin's steps, then the device-info file, the hint
// and the completed record; on failure everything is rolled back (unless
// WithoutRollback).
func (e *Engine[C, S]) Add(args *skel.CmdArgs) error {
	conf, err := e.load(args)
	if err != nil {
		return err
	}
	if e.spec.Admit != nil {
		if err = e.spec.Admit(conf, args); err != nil {
			return err
		}
	}
	c := conf.Common()
	at, err := OpenAttachment(e.spec.Name, string(CmdAdd), c.Config, c.StateDir, args)
	if err != nil {
		return err
	}
	succeeded := false
	// A failed ADD leaves no state behind, not even its lock file.
	defer func() { at.Close(!succeeded && !e.keepPartial) }()
	ctx := fault.With(context.Background(), e.hook)
	conn, closeConn, err := e.connect(ctx, conf, CmdAdd, at.Log)
	if err != nil {
		return err
	}
	defer closeConn()
	err = RecoverInterrupted(at.Store, args, at.Log, func(rec *store.Record) error {
		return e.teardownRecord(ctx, conn, rec, at.Log)
	})
	if err != nil {
		return err
	}
	a := &Addition[C, S]{Conf: conf, Args: args, Log: at.Log, Conn: conn, engine: e, store: at.Store, ctx: ctx}
	res, err := a.run(ctx)
	err = a.conclude(err)
	if err != nil {
		return err
	}
	succeeded = true
	at.Log.Info("ADD done")
	out, err := res.GetAsVersion(c.CNIVersion)
	if err != nil {
		return cnierr.Version("convert result to %q: %w", c.CNIVersion, err)
	}
	return out.PrintTo(e.stdout)
}

// Del implements CNI DEL, idempotent and best effort. With a record it
// tears down what the record names, with the recorded config; without one,
// what Assume derives from the config. DEL of a configuration ADD refuses
// succeeds when there is no record (RefusedDel).
func (e *Engine[C, S]) Del(args *skel.CmdArgs) (err error) {
	conf, err := e.spec.Parse(args.StdinData, args.Args)
	if err != nil {
		return undecodableDel(args, err)
	}
	c := conf.Common()
	if err = validate(conf, args); err != nil {
		return RefusedDel(c.StateDir, args.ContainerID, args.IfName, err)
	}
	at, err := OpenAttachment(e.spec.Name, string(CmdDel), c.Config, c.StateDir, args)
	if err != nil {
		return err
	}
	// The lock file goes with the attachment: kept while DEL has not
	// finished the job.
	defer func() { at.Close(err == nil) }()
	ctx := context.Background()
	conn, closeConn, err := e.connect(ctx, conf, CmdDel, at.Log)
	if err != nil {
		return err
	}
	defer closeConn()
	rec, err := at.Store.Get(args.ContainerID, args.IfName)
	if err != nil {
		at.Log.Warn("unreadable record, deleting by name", "err", err)
	}
	if rec != nil {
		if err = e.teardownRecord(ctx, conn, rec, at.Log); err == nil {
			at.Log.Info("DEL done")
			return nil
		}
		if !isUnreadable(err) {
			return err
		}
		at.Log.Warn("unreadable record, deleting by name", "err", err)
	}
	t := &Teardown[C, S]{Conf: conf, Key: keyOf(args), Log: at.Log, Conn: conn}
	if e.spec.Assume != nil {
		if t.State, err = e.spec.Assume(conf, args); err != nil {
			return RefusedDel(c.StateDir, args.ContainerID, args.IfName, err)
		}
	}
	// Without a record nothing says the config's device-info file is
	// ours (a device plugin writes one too): it is left alone.
	if err = e.teardown(ctx, t, at.Store, ""); err == nil {
		at.Log.Info("DEL done")
	}
	return err
}

// unreadable marks a record the engine cannot decode.
type unreadable struct{ error }

func (u unreadable) Unwrap() error { return u.error }

func isUnreadable(err error) bool {
	var u unreadable
	return errors.As(err, &u)
}

// teardownRecord runs DEL for a recorded attachment with the config ADD
// recorded (DEL, GC, recovery of an interrupted ADD).
func (e *Engine[C, S]) teardownRecord(ctx context.Context, conn Conn, rec *store.Record, log *slog.Logger) error {
	conf, err := e.spec.Parse(rec.Config, rec.Args)
	if err == nil {
		err = conf.Validate()
	}
	if err != nil {
		return unreadable{fmt.Errorf("recorded config: %w", err)}
	}
	st := new(S)
	if err = json.Unmarshal(rec.State, st); err != nil {
		return unreadable{fmt.Errorf("recorded state: %w", err)}
	}
	t := &Teardown[C, S]{
		Conf: conf, State: st, Recorded: true, Log: log, Conn: conn,
		Key:    ipam.Attachment{ContainerID: rec.ContainerID, Netns: rec.Netns, IfName: rec.IfName, Args: rec.Args},
		leases: rec.Leases,
	}
	if rec.NetnsID != "" {
		if now, _ := netns.Identity(rec.Netns); now != rec.NetnsID {
			// The pod's namespace is gone (and its links with it); the path
			// may now name another pod's: never enter it.
			log.Warn("the recorded netns path no longer names the pod's namespace; treating it as gone", "netns", rec.Netns)
			t.netnsGone = true
		}
	}
	return e.teardown(ctx, t, store.New(conf.Common().StateDir), rec.DeviceInfoFile)
}

// teardown runs the plugin's steps and IPAM's release side by side, then
// removes the hint and device-info files and, when every step succeeded,
// the record.
func (e *Engine[C, S]) teardown(ctx context.Context, t *Teardown[C, S], st *store.Store, deviceInfo string) error {
	if e.spec.Busy != nil && t.State != nil {
		if err := e.spec.Busy(t); err != nil {
			return err
		}
	}
	c := t.Conf.Common()
	t.Step(hint.Remove(c.StateDir, t.Key.ContainerID, t.Key.IfName))
	t.Step(hint.RemoveDeviceInfo(deviceInfo))
	if dir := c.KataDanDir; dir != "" {
		t.Step(hint.RemoveDanDevice(dir, t.Key.ContainerID, t.Key.IfName))
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		if d := e.ipamFor(t.Conf, t.State, c.Raw, t.leases); d.Type != "" {
			t.Step(d.Del(ctx, t.Key))
		}
	}()
	if t.State != nil {
		e.spec.Teardown(ctx, t)
	}
	<-released
	return t.finish(st)
}

// Check implements CNI CHECK: a complete record, the hint, prevResult
// carrying the hint, then the plugin's Check and IPAM CHECK.
func (e *Engine[C, S]) Check(args *skel.CmdArgs) error {
	conf, err := e.load(args)
	if err != nil {
		return err
	}
	c := conf.Common()
	if c.Prev == nil {
		return cnierr.Config("CHECK needs prevResult")
	}
	rec, err := store.New(c.StateDir).GetComplete(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	st := new(S)
	if err = json.Unmarshal(rec.State, st); err != nil {
		return fmt.Errorf("recorded state: %w", err)
	}
	var h *hint.Hint
	if rec.Hint {
		if h, err = hint.Read(c.StateDir, args.ContainerID, args.IfName); err != nil {
			return fmt.Errorf("hint: %w", err)
		}
		if err = hint.CheckResult(c.Prev, h); err != nil {
			return err
		}
		if err = checkDan(c.KataDanDir, h); err != nil {
			return err
		}
	}
	ctx := context.Background()
	conn, closeConn, err := e.connect(ctx, conf, CmdCheck, nil)
	if err != nil {
		return err
	}
	defer closeConn()
	if err = e.spec.Check(ctx, &Checking[C, S]{Conf: conf, Args: args, State: st, Hint: h, Conn: conn}); err != nil {
		return err
	}
	if d := e.ipamFor(conf, st, args.StdinData, rec.Leases); d.Type != "" {
		return d.Check(ctx, keyOf(args))
	}
	return nil
}

// Checking is one CHECK's view of a recorded attachment (Hint is nil when
// ADD wrote none).
type Checking[C Config, S any] struct {
	Conf  C
	Args  *skel.CmdArgs
	State *S
	Hint  *hint.Hint
	Conn  Conn
}

// Status implements CNI STATUS: the state dir is writable, the plugin's
// own checks pass and the IPAM plugin is ready; code 50 otherwise.
func (e *Engine[C, S]) Status(args *skel.CmdArgs) error {
	conf, err := e.spec.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	if e.spec.Status != nil {
		if err = e.spec.Status(ctx, conf); err != nil {
			return err
		}
	}
	if err = WritableDir("state dir", conf.Common().StateDir); err != nil {
		return err
	}
	if d := e.ipamFor(conf, nil, args.StdinData, nil); d.Type != "" {
		return IPAMReady(ctx, d)
	}
	return nil
}

func keyOf(args *skel.CmdArgs) ipam.Attachment {
	return ipam.Attachment{ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
}

// checkDan checks that the Kata DAN file, when configured, holds the
// attachment's entry as ADD wrote it.
func checkDan(dir string, h *hint.Hint) error {
	if dir == "" {
		return nil
	}
	want, err := hint.DanDeviceFor(h, h.IfName)
	if err != nil {
		return err
	}
	dan, err := hint.ReadDan(dir, h.ContainerID)
	if err != nil {
		return fmt.Errorf("kata DAN file: %w", err)
	}
	for _, d := range dan.Devices {
		if d.Name == h.IfName {
			if !reflect.DeepEqual(d, want) {
				return fmt.Errorf("kata DAN entry %q is %+v, want %+v", h.IfName, d, want)
			}
			return nil
		}
	}
	return fmt.Errorf("kata DAN file %s has no entry %q", hint.DanPath(dir, h.ContainerID), h.IfName)
}
