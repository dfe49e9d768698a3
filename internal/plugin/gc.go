package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/ipam"
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

// GCSpec is one plugin's GC of one network (see RunGC).
type GCSpec struct {
	// Plugin is the plugin's name, as its records carry it.
	Plugin string
	// Network is the network's name; StateDir holds its records.
	Network, StateDir string
	// LogCfg is the config's logging settings.
	LogCfg logging.Config
	// Stdin is GC's stdin: the valid attachments, and IPAM's config.
	Stdin []byte
	// IPAM is the IPAM plugin GC is forwarded to; "" for none.
	IPAM string
	// Teardown undoes one stale attachment as DEL would.
	Teardown func(rec *store.Record, log *slog.Logger) error
	// Sweep (optional) then removes the plugin's objects of the network
	// that neither a valid attachment nor a record owns (leftovers of lost
	// records).
	Sweep func(ctx context.Context, valid map[types.GCAttachment]bool, log *slog.Logger) error
}

// RunGC is GC's common part: it reads the valid attachments, tears down
// every record of the network not among them (each under its
// attachment's lock, store.CollectStale), runs the sweep, and forwards GC
// to the IPAM plugin. One failure does not stop the rest; errors are
// joined.
func RunGC(ctx context.Context, s GCSpec) error {
	valid, err := ValidAttachments(s.Stdin)
	if err != nil {
		return err
	}
	log, closeLog := logging.Open(s.LogCfg, "plugin", s.Plugin, "cmd", "GC", "network", s.Network)
	defer closeLog()
	errs := []error{store.New(s.StateDir).CollectStale(s.Network, s.Plugin, valid, func(rec *store.Record) error {
		log.Info("collecting stale attachment", "container", rec.ContainerID, "ifname", rec.IfName)
		return s.Teardown(rec, log.With("container", rec.ContainerID, "ifname", rec.IfName))
	})}
	if s.Sweep != nil {
		errs = append(errs, s.Sweep(ctx, valid, log))
	}
	if s.IPAM != "" {
		errs = append(errs, ipam.Delegate{Type: s.IPAM, Config: s.Stdin}.GC(ctx))
	}
	return errors.Join(errs...)
}
