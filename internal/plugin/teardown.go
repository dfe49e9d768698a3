package plugin

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// Teardown is a best-effort DEL of one attachment: every step runs, each
// failure is logged and kept, and the record goes last, only when every
// step succeeded, so that a retried DEL or GC can finish the job. Step is
// safe for concurrent use.
type Teardown struct {
	log *slog.Logger

	mu   sync.Mutex // guards errs
	errs []error
}

// BeginTeardown starts the teardown of (containerID, ifName) with the
// steps every plugin's DEL begins with: removing the attachment's hint
// file under stateDir and its NPWG device-info file, if any.
func BeginTeardown(log *slog.Logger, stateDir, containerID, ifName, deviceInfoFile string) *Teardown {
	t := &Teardown{log: log}
	t.Step(hint.Remove(stateDir, containerID, ifName))
	t.Step(hint.RemoveDeviceInfo(deviceInfoFile))
	return t
}

// Step records one step's outcome.
func (t *Teardown) Step(err error) {
	if err == nil {
		return
	}
	t.log.Warn("DEL step failed", "err", err)
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
}

// Finish deletes the attachment's record from st when every step
// succeeded, and returns the failed steps' errors joined.
func (t *Teardown) Finish(st *store.Store, containerID, ifName string) error {
	t.mu.Lock()
	ok := len(t.errs) == 0
	t.mu.Unlock()
	if ok {
		t.Step(st.Delete(containerID, ifName))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}
