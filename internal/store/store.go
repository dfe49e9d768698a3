// Package store keeps one record per attachment (containerID, ifname) under a
// state directory so that DEL and GC can undo what ADD did, even when ADD
// crashed half way.
//
// Contract: a plugin writes the record before its first side effect,
// listing in State everything it is about to create, and marks it Complete at
// the end of ADD. DEL reads the record (if any) to know what to remove and
// deletes it last. GC lists the records of its network and treats every one
// not in cni.dev/valid-attachments as a DEL.
//
// Layout: <stateDir>/<containerID>/<ifName>/record.json, next to the hint
// file of package hint. Writes are atomic and durable (hint.WriteFileDurable:
// temp file, fsync, rename, and fsync of the directory for a new record):
// after a crash a record is the old one or the new one, never empty. The
// one exception is PutDeferSync, for an ADD's first record when the side
// effects made before its sync vanish with a reboot anyway: a power loss
// in that window may leave it empty, which List skips and GC reports
// (Unreadable) and DEL treats as no record. Lock serialises commands on
// one attachment across processes with flock(2).
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmcni/vmcni/pkg/hint"
)

const recordFile = "record.json"

// Record is what a plugin remembers about one attachment.
type Record struct {
	Plugin      string `json:"plugin"`
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	// NetnsID is the identity of the namespace Netns named at ADD
	// (netns.Identity), empty when it was not a namespace (vhost-user,
	// vfio): DEL and GC leave a path that now names another namespace
	// alone.
	NetnsID string `json:"netnsID,omitempty"`
	// Config is the plugin's stdin config of ADD (without prevResult); GC
	// replays DEL with it.
	Config json.RawMessage `json:"config,omitempty"`
	// Args is CNI_ARGS of ADD.
	Args string `json:"args,omitempty"`
	// State is plugin-specific: the names it creates, values it must restore.
	State json.RawMessage `json:"state,omitempty"`
	// Hint reports whether ADD wrote a hint file (package hint).
	Hint bool `json:"hint,omitempty"`
	// Leases are the addresses the in-process host-local leased to the
	// attachment (internal/ipam); nil when unknown (IPAM run as a binary,
	// or ADD stopped before its last save): DEL then scans the leases.
	Leases []string `json:"leases,omitempty"`
	// DeviceInfoFile is the NPWG device-info file ADD wrote, if any.
	DeviceInfoFile string    `json:"deviceInfoFile,omitempty"`
	Complete       bool      `json:"complete"`
	Created        time.Time `json:"created"`
}

// Store is a state directory.
type Store struct {
	Dir string
}

// New returns the store rooted at dir (hint.DefaultStateDir when empty).
func New(dir string) *Store {
	if dir == "" {
		dir = hint.DefaultStateDir
	}
	return &Store{Dir: dir}
}

func (s *Store) path(containerID, ifName string) string {
	return filepath.Join(hint.AttachmentDir(s.Dir, containerID, ifName), recordFile)
}

// Put writes rec atomically and durably.
func (s *Store) Put(rec *Record) error {
	data, err := s.encode(rec)
	if err == nil {
		err = hint.WriteFileDurable(s.path(rec.ContainerID, rec.IfName), data, 0o600)
	}
	if err != nil {
		return fmt.Errorf("write attachment record: %w", err)
	}
	return nil
}

// PutDeferSync is Put that returns as soon as the record is in place and
// leaves its fsyncs to sync (hint.WriteFileDeferSync): for the first
// record of an ADD whose next side effects vanish with a reboot anyway,
// so the fsyncs overlap them. A power loss before sync may leave the
// record torn, which Get reports and DEL and GC handle.
func (s *Store) PutDeferSync(rec *Record) (sync func() error, err error) {
	data, err := s.encode(rec)
	if err == nil {
		sync, err = hint.WriteFileDeferSync(s.path(rec.ContainerID, rec.IfName), data, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("write attachment record: %w", err)
	}
	return sync, nil
}

func (s *Store) encode(rec *Record) ([]byte, error) {
	if err := hint.ValidateKey(rec.ContainerID, rec.IfName); err != nil {
		return nil, err
	}
	if rec.Created.IsZero() {
		rec.Created = time.Now().UTC()
	}
	return json.MarshalIndent(rec, "", "  ")
}

// Get reads the record of (containerID, ifName); it returns nil, nil when
// there is none.
func (s *Store) Get(containerID, ifName string) (*Record, error) {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path(containerID, ifName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode attachment record %q: %w", s.path(containerID, ifName), err)
	}
	return &rec, nil
}

// GetComplete returns the record of (containerID, ifName) for CHECK: an
// error when there is none or its ADD did not finish.
func (s *Store) GetComplete(containerID, ifName string) (*Record, error) {
	rec, err := s.Get(containerID, ifName)
	if err != nil {
		return nil, err
	}
	if rec == nil || !rec.Complete {
		return nil, fmt.Errorf("attachment %s/%s has no complete record", containerID, ifName)
	}
	return rec, nil
}

// Delete removes the record of (containerID, ifName) and the attachment and
// container directories when they are left empty. Missing files are not an
// error.
func (s *Store) Delete(containerID, ifName string) error {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return err
	}
	if err := os.Remove(s.path(containerID, ifName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir := hint.AttachmentDir(s.Dir, containerID, ifName)
	if err := hint.RemoveTempFiles(dir); err != nil {
		return err
	}
	s.removeIfEmpty(dir)
	s.removeIfEmpty(filepath.Join(s.Dir, containerID))
	return nil
}

// removeIfEmpty removes dir if it is empty; other outcomes are fine (a
// concurrent ADD may be filling it).
func (s *Store) removeIfEmpty(dir string) {
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return
	}
}

// List returns the records of network (all networks when network is ""),
// skipping unreadable ones.
func (s *Store) List(network string) ([]*Record, error) {
	matches, err := filepath.Glob(filepath.Join(s.Dir, "*", "*", recordFile))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, m := range matches {
		ifName := filepath.Base(filepath.Dir(m))
		containerID := filepath.Base(filepath.Dir(filepath.Dir(m)))
		rec, err := s.Get(containerID, ifName)
		if err != nil || rec == nil {
			continue
		}
		if network == "" || rec.Network == network {
			out = append(out, rec)
		}
	}
	return out, nil
}

// Unreadable returns the paths of records that exist but do not decode
// (torn by a crash): List skips them, GC reports them.
func (s *Store) Unreadable() ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(s.Dir, "*", "*", recordFile))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		data, err := os.ReadFile(m)
		var rec Record
		if err == nil && json.Unmarshal(data, &rec) != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// CollectOrphans removes what an ADD killed before its first record
// leaves when the runtime never sends the DEL: the temporary file of that
// record's write, and the attachment's lock file, for attachments that
// are neither valid nor recorded, and the lock directory once empty. Each attachment is locked first, so a
// command in progress finishes before anything of it goes.
func (s *Store) CollectOrphans(valid map[types.GCAttachment]bool) error {
	seen := map[types.GCAttachment]bool{}
	dirs, _ := filepath.Glob(filepath.Join(s.Dir, "[a-zA-Z0-9]*", "*"))
	for _, dir := range dirs {
		seen[types.GCAttachment{ContainerID: filepath.Base(filepath.Dir(dir)), IfName: filepath.Base(dir)}] = true
	}
	locks, _ := filepath.Glob(filepath.Join(s.Dir, ".locks", "*:*"))
	for _, l := range locks {
		if containerID, ifName, ok := strings.Cut(filepath.Base(l), ":"); ok {
			seen[types.GCAttachment{ContainerID: containerID, IfName: ifName}] = true
		}
	}
	var errs []error
	for a := range seen {
		if valid[a] || hint.ValidateKey(a.ContainerID, a.IfName) != nil {
			continue
		}
		errs = append(errs, s.collectOrphan(a.ContainerID, a.IfName))
	}
	// The lock directory an ADD killed before its lock file left empty
	// (LockFile starts again when a holder removes the directory under it).
	_ = os.Remove(filepath.Join(s.Dir, ".locks"))
	return errors.Join(errs...)
}

// collectOrphan removes an unrecorded attachment's leftovers under its
// lock (the record is checked again once the lock is held).
func (s *Store) collectOrphan(containerID, ifName string) error {
	if _, err := os.Stat(s.path(containerID, ifName)); err == nil {
		return nil
	}
	lock, err := s.Lock(containerID, ifName)
	if err != nil {
		return err
	}
	if _, err = os.Stat(s.path(containerID, ifName)); !errors.Is(err, os.ErrNotExist) {
		lock.Unlock(false) // recorded meanwhile, or unreadable: not an orphan
		return nil
	}
	err = s.Delete(containerID, ifName) // the temporary files, the empty dirs
	lock.Unlock(true)
	return err
}

// Lock is an exclusive lock on a lock file, held by this process.
type Lock struct {
	file *os.File
}

// lockPath is <stateDir>/.locks/<containerID>:<ifName>. Neither a
// container ID nor an interface name can contain ':', so distinct
// attachments never share a lock file.
func (s *Store) lockPath(containerID, ifName string) string {
	return filepath.Join(s.Dir, ".locks", containerID+":"+ifName)
}

// Lock takes an exclusive flock on the attachment's lock file under
// <stateDir>/.locks, waiting for other commands on the same attachment.
func (s *Store) Lock(containerID, ifName string) (*Lock, error) {
	if err := hint.ValidateKey(containerID, ifName); err != nil {
		return nil, err
	}
	l, err := LockFile(s.lockPath(containerID, ifName))
	if err != nil {
		return nil, fmt.Errorf("lock attachment %q/%q: %w", containerID, ifName, err)
	}
	return l, nil
}

// LockFile takes an exclusive flock(2) on the file at path, creating it
// and its directory, and waits for other holders. Holders that remove the
// file (Unlock(true)) and holders that keep it may share a path: a waiter
// that wakes up holding a file another holder removed meanwhile starts
// again on the file now on disk.
func LockFile(path string) (*Lock, error) {
	for {
		// (again each round: the last holder may have removed the directory)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
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
			return nil, err
		}
		var held, onDisk syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &onDisk) == nil &&
			held.Ino == onDisk.Ino && held.Dev == onDisk.Dev {
			return &Lock{file: f}, nil
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

// Unlock releases the lock; with removeFile it first deletes the lock file
// and then its directory when that is empty (DEL does, so a deleted
// attachment leaves nothing behind).
func (l *Lock) Unlock(removeFile bool) {
	if removeFile {
		_ = os.Remove(l.file.Name())
	}
	_ = l.file.Close()
	if removeFile {
		_ = os.Remove(filepath.Dir(l.file.Name())) // only succeeds when empty
	}
}

// CollectStale is GC's common part: for every record of network written
// by pluginName whose attachment is not in valid, it takes the attachment's
// lock, re-reads the record (a DEL may have run meanwhile) and calls
// teardown with it. One failure does not stop the others; errors are joined.
func (s *Store) CollectStale(network, pluginName string, valid map[types.GCAttachment]bool, teardown func(*Record) error) error {
	records, err := s.List(network)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range records {
		if rec.Plugin != pluginName || valid[types.GCAttachment{ContainerID: rec.ContainerID, IfName: rec.IfName}] {
			continue
		}
		errs = append(errs, s.collect(rec, teardown))
	}
	return errors.Join(errs...)
}

func (s *Store) collect(rec *Record, teardown func(*Record) error) error {
	lock, err := s.Lock(rec.ContainerID, rec.IfName)
	if err != nil {
		return err
	}
	defer lock.Unlock(true)
	fresh, err := s.Get(rec.ContainerID, rec.IfName)
	if err != nil || fresh == nil {
		return err
	}
	return teardown(fresh)
}
