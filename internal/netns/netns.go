// Package netns runs code inside a network namespace given by path.
//
// Threading rule: Do locks the calling goroutine to its OS thread, switches
// that thread into the namespace, runs fn on the calling goroutine, and
// switches back. fn must not start goroutines that expect to be in the
// namespace: they run on other threads, in the caller's namespace. Netlink
// calls made from fn with the package-level github.com/vishvananda/netlink
// functions act inside the namespace.
//
// Do runs fn on the calling goroutine instead of a new one (as
// containernetworking/plugins/pkg/ns does): a plugin enters the pod's
// namespace a few times per command, and a fresh goroutine each time pays
// for a thread hand-off and for growing a new stack to the size netlink's
// receive buffer needs (about half a millisecond of a vm-bridge ADD). If the
// thread cannot switch back (setns fails: only on memory exhaustion), Do
// returns an error matching ErrStranded and leaves the goroutine locked
// to that thread, which the runtime destroys when the goroutine ends;
// every later Do fails with ErrStranded, and the caller must end the
// command.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// ErrGone reports that the namespace path does not exist (any more).
var ErrGone = errors.New("network namespace is gone")

// ErrStranded reports that a thread could not return to its namespace
// after Do (see the package doc).
var ErrStranded = errors.New("thread stranded in another network namespace")

// stranded is set once a thread could not switch back.
var stranded atomic.Bool

// Do runs fn inside the namespace at path. A missing namespace gives an
// error matching ErrGone.
func Do(path string, fn func() error) error {
	if path == "" {
		return fmt.Errorf("%w: no path", ErrGone)
	}
	netns, err := ns.GetNS(path)
	if err != nil {
		var notExist ns.NSPathNotExistErr
		if errors.As(err, &notExist) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %q", ErrGone, path)
		}
		return fmt.Errorf("open netns %q: %w", path, err)
	}
	defer netns.Close()
	if stranded.Load() {
		return ErrStranded
	}
	runtime.LockOSThread()
	back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open the current netns: %w", err)
	}
	defer unix.Close(back)
	if err = netns.Set(); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %q: %w", path, err)
	}
	fnErr := fn()
	if err = unix.Setns(back, unix.CLONE_NEWNET); err != nil {
		stranded.Store(true) // the thread stays locked: it dies with the goroutine
		return errors.Join(fnErr, fmt.Errorf("%w: leave netns %q: %w", ErrStranded, path, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Exists reports whether path is an existing network namespace.
func Exists(path string) bool {
	return path != "" && ns.IsNSorErr(path) == nil
}

// Open returns the namespace at path; the caller closes it.
func Open(path string) (ns.NetNS, error) {
	netns, err := ns.GetNS(path)
	if err != nil {
		var notExist ns.NSPathNotExistErr
		if errors.As(err, &notExist) {
			return nil, fmt.Errorf("%w: %q", ErrGone, path)
		}
		return nil, fmt.Errorf("open netns %q: %w", path, err)
	}
	return netns, nil
}

// Identity names the namespace path refers to now ("<dev>:<inode>" of
// its nsfs file), so a recorded path can be checked to still mean the
// same namespace: a named netns deleted and created again under the same
// name, or a pid's netns path after the pid was reused, is another one.
// A path that is not a network namespace gives ErrGone.
func Identity(path string) (string, error) {
	if !Exists(path) {
		return "", fmt.Errorf("%w: %q", ErrGone, path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrGone, path, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}
