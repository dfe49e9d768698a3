package plugin

import (
	"encoding/json"
	"log/slog"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/logging"
	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
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
// The CNI library's own checks come first (their messages and codes),
// then vmcni's: a container ID that can name a file and a directory.
func ValidateArgs(containerID, ifName string) error {
	if err := utils.ValidateContainerID(containerID); err != nil {
		return err
	}
	if err := utils.ValidateInterfaceName(ifName); err != nil {
		return err
	}
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return cnierr.Env("%w", err)
	}
	if err := link.ValidateName(ifName); err != nil {
		return cnierr.Env("CNI_IFNAME: %w", err)
	}
	return nil
}

// RefusedDel answers DEL for a configuration that ADD refuses (verr, from
// Validate). Such an ADD returns before it writes its record or changes
// anything, so when stateDir holds no record of the attachment there is
// nothing to undo and DEL succeeds: a runtime retries a failing DEL for
// ever, and the pod never goes away. A record means an earlier ADD
// succeeded with another configuration (the network was edited since);
// its teardown needs a valid configuration, so verr stands.
func RefusedDel(stateDir, containerID, ifName string, verr error) error {
	if !filepath.IsAbs(stateDir) || hint.ValidateKey(containerID, ifName) != nil {
		return nil // ADD refuses these before any record
	}
	rec, err := store.New(stateDir).Get(containerID, ifName)
	if err == nil && rec == nil {
		return nil
	}
	return verr
}

// undecodableDel is DEL of a config or CNI_ARGS the plugin cannot decode
// (a negative number in an unsigned field, a MAC that does not parse): ADD
// refuses them before any side effect, so DEL succeeds when the shared part
// of the config decodes and its state dir holds no record for the key.
// Otherwise derr stands: a record exists, or nothing says where to look.
func undecodableDel(args *skel.CmdArgs, derr error) error {
	var c NetConf
	if json.Unmarshal(args.StdinData, &c) != nil {
		return derr
	}
	if c.StateDir == "" {
		c.StateDir = hint.DefaultStateDir
	}
	return RefusedDel(c.StateDir, args.ContainerID, args.IfName, derr)
}
