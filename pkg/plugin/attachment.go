package plugin

import (
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vmcni/vmcni/pkg/cnierr"
	"github.com/vmcni/vmcni/pkg/hint"
	"github.com/vmcni/vmcni/pkg/link"
	"github.com/vmcni/vmcni/pkg/logging"
	"github.com/vmcni/vmcni/pkg/store"
)

// Attachment is one command's hold on one attachment (containerID,
// ifname): its logger (to the config's logFile) and its store, with the
// attachment's lock taken, so ADD, DEL and GC of one attachment never
// interleave.
type Attachment struct {
	Log      *slog.Logger
	Store    *store.Store
	lock     *store.Lock
	closeLog func()
}

// OpenAttachment starts command cmd of pluginName on args' attachment: it
// opens the log and waits for the attachment's lock in stateDir.
func OpenAttachment(pluginName, cmd string, logCfg logging.Config, stateDir string, args *skel.CmdArgs) (*Attachment, error) {
	log, closeLog := logging.Open(logCfg, "plugin", pluginName, "cmd", cmd,
		"container", args.ContainerID, "ifname", args.IfName)
	st := store.New(stateDir)
	lock, err := st.Lock(args.ContainerID, args.IfName)
	if err != nil {
		closeLog()
		return nil, err
	}
	return &Attachment{Log: log, Store: st, lock: lock, closeLog: closeLog}, nil
}

// Close releases the lock, removing the lock file when forget (the
// attachment is gone: DEL, or an ADD that failed and rolled back), and
// closes the log.
func (a *Attachment) Close(forget bool) {
	a.lock.Unlock(forget)
	a.closeLog()
}

// ValidateArgs checks the CNI_CONTAINERID and CNI_IFNAME values a plugin
// uses in names (state paths, link names): code 4 when they cannot be.
func ValidateArgs(containerID, ifName string) error {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return cnierr.Env("%w", err)
	}
	if err := link.ValidateName(ifName); err != nil {
		return cnierr.Env("CNI_IFNAME: %w", err)
	}
	return nil
}
