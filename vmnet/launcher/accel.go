package launcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// accelCache remembers, per machine, whether guests boot under KVM (on some
// hosts /dev/kvm exists but only runs paravirtualised guests).
var accelCache = "/var/cache/vmcni/accel"

// kvmProbeTimeout bounds the first boot under KVM before falling back.
const kvmProbeTimeout = 15 * time.Second

func (s *Session) chooseAccel(ctx context.Context, fds [][]int) (string, error) {
	switch s.opts.Accel {
	case "kvm", "tcg":
		return s.opts.Accel, nil
	case "auto":
	default:
		return "", fmt.Errorf("accel %q is not auto, kvm or tcg", s.opts.Accel)
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		return "tcg", nil
	} else {
		_ = f.Close()
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "tcg", nil // PVM KVM runs only paravirtualised guest kernels
	}
	if data, err := os.ReadFile(accelCache); err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	// Probe: a guest that reaches READY under KVM proves it works here.
	accel := "tcg"
	if err := s.bootOnce(ctx, fds, "kvm", kvmProbeTimeout); err == nil {
		accel = "kvm"
	}
	_ = s.vm.stop()
	s.vm = nil
	_ = os.MkdirAll(filepath.Dir(accelCache), 0o755)
	_ = os.WriteFile(accelCache, []byte(accel+"\n"), 0o644)
	s.opts.Logger.Info("accelerator probed", "accel", accel)
	return accel, nil
}

func hostCPUkHz() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			var mhz float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &mhz); err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
