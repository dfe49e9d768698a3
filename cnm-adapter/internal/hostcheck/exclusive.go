package hostcheck

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// lockPath is the lock shared by the cnm-adapter test binaries.
const lockPath = "/run/vmcni-cnm-adapter-tests.lock"

// Exclusive makes the calling test the only cnm-adapter test that changes
// the host until it ends: `go test ./cnm-adapter/...` runs the driver and
// e2e packages in parallel processes, and one's veths (named vmc<hash> by
// vm-bridge, so not claimable by prefix) and nftables rules would show up
// in the other's snapshot. Call it first, so its cleanup (the unlock) runs
// after the test's own cleanups.
func Exclusive(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open test lock %q: %v", lockPath, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		t.Fatalf("lock %q: %v", lockPath, err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}
