package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyMarker is the console line prefix the vmcni test guest prints when
// its network is configured.
const ReadyMarker = "VMCNI-GUEST-READY"

// vmProcess is a running QEMU with its serial console captured.
type vmProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed

	mu      sync.Mutex // guards lines and waiters
	lines   []string
	waiters []chan struct{}
}

// startQEMU starts qemu with args; files become fds 3, 4, ... in the child.
// Console lines are kept and copied to echo (if not nil).
func startQEMU(binary string, args []string, files []*os.File, echo io.Writer) (*vmProcess, error) {
	cmd := exec.Command(binary, args...)
	cmd.ExtraFiles = files
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	vm := &vmProcess{cmd: cmd, done: make(chan struct{})}
	go vm.readConsole(stdout, echo)
	go func() {
		vm.err = cmd.Wait()
		close(vm.done)
	}()
	return vm, nil
}

func (vm *vmProcess) readConsole(r io.Reader, echo io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if echo != nil {
			fmt.Fprintln(echo, line)
		}
		vm.mu.Lock()
		vm.lines = append(vm.lines, line)
		for _, w := range vm.waiters {
			close(w)
		}
		vm.waiters = nil
		vm.mu.Unlock()
	}
}

// waitFor returns the first console line starting with prefix, waiting until
// ctx ends or QEMU exits.
func (vm *vmProcess) waitFor(ctx context.Context, prefix string) (string, error) {
	for {
		vm.mu.Lock()
		for _, l := range vm.lines {
			if i := strings.Index(l, prefix); i >= 0 {
				vm.mu.Unlock()
				return l[i:], nil
			}
		}
		wake := make(chan struct{})
		vm.waiters = append(vm.waiters, wake)
		vm.mu.Unlock()
		select {
		case <-wake:
		case <-vm.done:
			return "", fmt.Errorf("qemu exited before %q: %w\n%s", prefix, vm.err, vm.tail(20))
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q: %w\n%s", prefix, ctx.Err(), vm.tail(20))
		}
	}
}

// Console returns the console lines so far.
func (vm *vmProcess) console() []string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]string(nil), vm.lines...)
}

func (vm *vmProcess) tail(n int) string {
	lines := vm.console()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop asks QEMU to quit (SIGTERM: it exits 0 at once; the guest has no
// disk to flush), kills its process group if it is still there after
// stopGrace, and waits for it.
func (vm *vmProcess) stop() error {
	select {
	case <-vm.done:
		return nil
	default:
	}
	_ = vm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vm.done:
		return nil
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-vm.done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("qemu did not exit after SIGKILL")
	}
}

// stopGrace is how long stop waits for QEMU to quit on SIGTERM.
const stopGrace = 3 * time.Second
