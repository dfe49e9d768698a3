package sriov

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmcni/vmcni/internal/store"
	"github.com/vmcni/vmcni/pkg/hint"
)

// vfDir is <stateDir>/.vf/<pci>: the VF's lock file and allocation record.
// (".vf" cannot collide with a container ID, which starts with [a-zA-Z0-9].)
func vfDir(stateDir, pci string) string { return filepath.Join(stateDir, ".vf", pci) }

// Owner is the allocation record of one VF: the attachment holding it.
// Only the owner's DEL or GC may touch the VF.
type Owner struct {
	Network     string    `json:"network"`
	ContainerID string    `json:"containerID"`
	IfName      string    `json:"ifName"`
	Netns       string    `json:"netns"`
	Since       time.Time `json:"since"`
	// Restore is the VF as ADD found it (the attachment record's state
	// at allocation): DEL restores the VF from it when the record itself
	// is lost or torn.
	Restore *state `json:"restore,omitempty"`
}

// is reports whether o is the attachment (containerID, ifName, netns).
func (o *Owner) is(containerID, ifName, netns string) bool {
	return o != nil && o.ContainerID == containerID && o.IfName == ifName && o.Netns == netns
}

// String names the owning attachment for error messages and logs.
func (o *Owner) String() string {
	return fmt.Sprintf("container %q ifname %q netns %q (network %q, since %s)",
		o.ContainerID, o.IfName, o.Netns, o.Network, o.Since.Format(time.RFC3339))
}

// lockVF takes the VF's lock, waiting for other commands on the same VF.
// The lock file stays (one per VF ever used; it holds no data): release it
// with Unlock(false). Once it holds the lock, it removes the temporary
// file of an allocation write a crash interrupted: every write runs under
// the lock, so none is in progress.
func lockVF(stateDir, pci string) (*store.Lock, error) {
	l, err := store.LockFile(filepath.Join(vfDir(stateDir, pci), "lock"))
	if err != nil {
		return nil, fmt.Errorf("lock VF %q: %w", pci, err)
	}
	if err := hint.RemoveTempFiles(vfDir(stateDir, pci)); err != nil {
		l.Unlock(false)
		return nil, fmt.Errorf("lock VF %q: %w", pci, err)
	}
	return l, nil
}

func ownerPath(stateDir, pci string) string { return filepath.Join(vfDir(stateDir, pci), "owner.json") }

// readOwner returns the VF's allocation record, nil when it is free.
func readOwner(stateDir, pci string) (*Owner, error) {
	data, err := os.ReadFile(ownerPath(stateDir, pci))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read allocation of VF %q: %w", pci, err)
	}
	var o Owner
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("decode allocation of VF %q: %w", pci, err)
	}
	return &o, nil
}

// writeOwner records o as the VF's owner (call with the VF lock held).
func writeOwner(stateDir, pci string, o *Owner) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := hint.WriteFileDurable(ownerPath(stateDir, pci), data, 0o600); err != nil {
		return fmt.Errorf("record allocation of VF %q: %w", pci, err)
	}
	return nil
}

// releaseOwner frees the VF if (containerID, ifName, netns) owns it.
func releaseOwner(stateDir, pci, containerID, ifName, netns string) error {
	o, err := readOwner(stateDir, pci)
	if err != nil || !o.is(containerID, ifName, netns) {
		return err
	}
	if err := os.Remove(ownerPath(stateDir, pci)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release VF %q: %w", pci, err)
	}
	return nil
}

// ReadOwner returns the attachment a VF is allocated to in stateDir, nil
// when it is free (for tools and tests).
func ReadOwner(stateDir, pci string) (*Owner, error) { return readOwner(stateDir, pci) }
