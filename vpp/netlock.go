package vpp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// networkLock is an exclusive flock(2) on one network's gateway, held by
// this process. It serialises, across plugin processes sharing stateDir,
// finding or creating the l3 network's gateway loopback and attaching an
// interface to it with the rollback's "delete the loopback if nothing
// uses it", so that no ADD attaches to a loopback another ADD's rollback
// is deleting.
//
// The lock file <stateDir>/.locks/.vm-vpp-<network hash> sits next to
// pkg/store's per-attachment locks and follows the same protocol (the
// holder removes the file, the next one checks it locked the file still
// on disk; the directory goes when empty). Its leading dot keeps it apart
// from the attachment locks, which start with a container ID.
type networkLock struct {
	file *os.File
}

// lockNetwork takes network's lock, waiting for other holders.
func lockNetwork(stateDir, network string) (*networkLock, error) {
	dir := filepath.Join(stateDir, ".locks")
	path := filepath.Join(dir, ".vm-vpp-"+networkHash(network))
	for {
		// (again each round: the last holder may have removed the directory)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := flock(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock network %q: %w", network, err)
		}
		// The holder before us may have removed the file: then our lock is
		// on an orphaned inode; start again.
		var held, onDisk syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &onDisk) == nil &&
			held.Ino == onDisk.Ino && held.Dev == onDisk.Dev {
			return &networkLock{file: f}, nil
		}
		_ = f.Close()
	}
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// unlock removes the lock file (and its directory when empty) and
// releases the lock.
func (l *networkLock) unlock() {
	_ = os.Remove(l.file.Name())
	_ = l.file.Close()
	_ = os.Remove(filepath.Dir(l.file.Name())) // only succeeds when empty
}
