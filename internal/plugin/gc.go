package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/internal/store"
)

// ValidAttachments reads a GC config's cni.dev/valid-attachments, or the
// older cni.dev/attachments key when the first is absent, as a set.
func ValidAttachments(stdin []byte) (map[types.GCAttachment]bool, error) {
	var keys struct {
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
		Older []types.GCAttachment `json:"cni.dev/attachments"`
	}
	if err := json.Unmarshal(stdin, &keys); err != nil {
		return nil, cnierr.Decode("parse GC attachments: %w", err)
	}
	list := keys.Valid
	if list == nil {
		list = keys.Older
	}
	valid := make(map[types.GCAttachment]bool, len(list))
	for _, a := range list {
		valid[a] = true
	}
	return valid, nil
}

// Collection is one GC run, as Spec.Sweep sees it.
type Collection[C Config] struct {
	Conf C
	// Valid are the attachments the runtime still uses.
	Valid map[types.GCAttachment]bool
	// Store holds the network's records; list them after reading the
	// backend's objects: an ADD writes its record before its first object,
	// so an ADD in progress is never swept.
	Store *store.Store
	Log   *slog.Logger
	Conn  Conn
}

// GC implements CNI GC: every record of the network whose attachment is
// not valid is torn down as DEL would (each under its attachment's lock,
// store.CollectStale), then the plugin's sweep runs, then GC is forwarded
// to the IPAM plugin. One failure does not stop the rest; errors are
// joined.
func (e *Engine[C, S]) GC(args *skel.CmdArgs) error {
	conf, err := e.spec.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err = conf.Validate(); err != nil {
		return err
	}
	valid, err := ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	c := conf.Common()
	log, closeLog := logging.Open(c.Config, "plugin", e.spec.Name, "cmd", string(CmdGC), "network", c.Name)
	defer closeLog()
	ctx := context.Background()
	conn, closeConn, err := e.connect(ctx, conf, CmdGC, log)
	if err != nil {
		return err
	}
	defer closeConn()
	st := store.New(c.StateDir)
	errs := []error{st.CollectStale(c.Name, e.spec.Name, valid, func(rec *store.Record) error {
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		return e.teardownRecord(ctx, conn, rec, log.With("container", rec.ContainerID, "ifname", rec.IfName))
	})}
	errs = append(errs, st.CollectOrphans(valid))
	// A torn record names no network: GC cannot tell whose it is, so it
	// says so (every run) instead of skipping it silently; the
	// attachment's DEL tears it down by name.
	torn, err := st.Unreadable()
	errs = append(errs, err)
	for _, path := range torn {
		log.Error("unreadable attachment record: DEL of its attachment cleans it up", "record", path)
		errs = append(errs, fmt.Errorf("unreadable attachment record %q", path))
	}
	if e.spec.Sweep != nil {
		errs = append(errs, e.spec.Sweep(ctx, &Collection[C]{Conf: conf, Valid: valid, Store: st, Log: log, Conn: conn}))
	}
	if d := e.ipamFor(conf, nil, args.StdinData, nil); d.Type != "" {
		errs = append(errs, d.GC(ctx, valid))
	}
	return errors.Join(errs...)
}
