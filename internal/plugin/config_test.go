package plugin

import (
	"testing"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// TestResolveMAC: config < CNI_ARGS < args.cni.mac < runtimeConfig.mac.
func TestResolveMAC(t *testing.T) {
	var args CNIArgs
	args.CNI.MAC = "02:00:00:00:00:03"
	tests := []struct {
		name, configured, env string
		args                  CNIArgs
		runtime, want         string
	}{
		{"none", "", "", CNIArgs{}, "", ""},
		{"config", "02:00:00:00:00:01", "", CNIArgs{}, "", "02:00:00:00:00:01"},
		{"CNI_ARGS over config", "02:00:00:00:00:01", "IgnoreUnknown=1;MAC=02:00:00:00:00:02", CNIArgs{}, "", "02:00:00:00:00:02"},
		{"args over CNI_ARGS", "02:00:00:00:00:01", "IgnoreUnknown=1;MAC=02:00:00:00:00:02", args, "", "02:00:00:00:00:03"},
		{"runtimeConfig over all", "02:00:00:00:00:01", "IgnoreUnknown=1;MAC=02:00:00:00:00:02", args, "02:00:00:00:00:04", "02:00:00:00:00:04"},
	}
	for _, tt := range tests {
		got, err := ResolveMAC(tt.configured, tt.env, tt.args, tt.runtime)
		if err != nil || got != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := ResolveMAC("", "MAC", CNIArgs{}, ""); cnierr.Code(err) != 4 {
		t.Fatalf("malformed CNI_ARGS: %v", err)
	}
}
