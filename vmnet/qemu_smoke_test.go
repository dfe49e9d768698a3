package vmnet

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestQEMUAcceptsVhostUser starts QEMU, paused, on QEMUArgs' vhost-user
// arguments and checks that it keeps running (QEMU exits at once on a bad
// option) and opens the socket in the right role. It needs
// qemu-system-x86_64 and neither root nor a network.
func TestQEMUAcceptsVhostUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts QEMU; skipped with -short")
	}
	qemu, lookErr := exec.LookPath("qemu-system-x86_64")
	if lookErr != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	for _, tt := range []struct{ machine, baseM, mode string }{
		{"microvm", "microvm,x-option-roms=off,rtc=on", "server"},
		{"microvm", "microvm,x-option-roms=off,rtc=on", "client"},
		{"pc", "pc", "server"},
		{"q35", "q35", "client"},
	} {
		t.Run(tt.machine+"-"+tt.mode, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "vu.sock")
			h := vhostUserHint(tt.mode, 2)
			h.VhostUser.Socket = sock
			var ln net.Listener
			var err error
			if tt.mode == "client" { // QEMU connects: be the switch
				if ln, err = net.Listen("unix", sock); err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
			}
			args, err := QEMUArgs(mustPlan(t, h), QEMUOptions{Machine: tt.machine, MemoryMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(qemu, append([]string{"-M", tt.baseM, "-accel", "tcg", "-m", "64M",
				"-nodefaults", "-no-user-config", "-display", "none", "-S"}, args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Kill()
				<-exited
			}()
			accepted := make(chan error, 1)
			if ln != nil {
				go func() {
					c, err := ln.Accept()
					if err == nil {
						c.Close()
					}
					accepted <- err
				}()
			}
			select {
			case err := <-exited:
				t.Fatalf("QEMU exited (%v): %s\nargs: %q", err, stderr.String(), args)
			case <-time.After(1500 * time.Millisecond):
			}
			if ln != nil {
				select {
				case err := <-accepted:
					if err != nil {
						t.Fatalf("accept: %v", err)
					}
				default:
					t.Fatalf("QEMU did not connect to %q: %s", sock, stderr.String())
				}
			} else if _, err := os.Stat(sock); err != nil {
				t.Fatalf("QEMU did not listen on %q: %v; %s", sock, err, stderr.String())
			}
		})
	}
}
