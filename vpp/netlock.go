package vpp

import (
	"fmt"
	"path/filepath"

	"github.com/vmcni/vmcni/internal/store"
)

// lockNetwork takes network's gateway lock, waiting for other holders;
// release it with Unlock(true). It serialises, across plugin processes
// sharing stateDir, finding or creating the l3 network's gateway loopback
// and attaching an interface to it with the rollback's "delete the
// loopback if nothing uses it", so that no ADD attaches to a loopback
// another ADD's rollback is deleting.
//
// The lock file <stateDir>/.locks/.vm-vpp-<network hash> sits next to
// internal/store's per-attachment locks; its leading dot keeps it apart from
// them (they start with a container ID).
func lockNetwork(stateDir, network string) (*store.Lock, error) {
	l, err := store.LockFile(filepath.Join(stateDir, ".locks", ".vm-vpp-"+networkHash(network)))
	if err != nil {
		return nil, fmt.Errorf("lock network %q: %w", network, err)
	}
	return l, nil
}
