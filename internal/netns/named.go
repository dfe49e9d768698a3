package netns

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"

	vnetns "github.com/vishvananda/netns"
)

// NamedDir is where named namespaces are bind-mounted (as by `ip netns`).
const NamedDir = "/var/run/netns"

// CreateNamed creates a named netns (like `ip netns add name`) and returns
// its path. The calling goroutine's thread stays in its own namespace.
func CreateNamed(name string) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		return "", err
	}
	defer orig.Close()
	h, err := vnetns.NewNamed(name)
	if err != nil {
		return "", err
	}
	_ = h.Close()
	if err := vnetns.Set(orig); err != nil {
		return "", err
	}
	return filepath.Join(NamedDir, name), nil
}

// DeleteNamed removes a named netns; a missing one is success. A file at
// the name that is not a namespace is removed too: what a CreateNamed
// killed between creating the file and bind-mounting the namespace on it
// leaves (and a later CreateNamed of the name would fail on).
func DeleteNamed(name string) error {
	path := filepath.Join(NamedDir, name)
	err := vnetns.DeleteNamed(name)
	if err == nil || Exists(path) {
		return err
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return rerr
	}
	return nil
}
