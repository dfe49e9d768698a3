// Package netns runs code inside a network namespace given by path.
//
// Threading rule (inherited from containernetworking/plugins/pkg/ns): Do
// locks the calling goroutine to its OS thread, switches that thread into the
// namespace, runs fn, and switches back. fn must not start goroutines that
// expect to be in the namespace: they run on other threads, in the host
// namespace. Netlink calls made from fn with the package-level
// github.com/vishvananda/netlink functions act inside the namespace.
package netns

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// ErrGone reports that the namespace path does not exist (any more).
var ErrGone = errors.New("network namespace is gone")

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
	return netns.Do(func(ns.NetNS) error { return fn() })
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
