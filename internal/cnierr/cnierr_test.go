package cnierr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestToCNI(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		code uint
		msg  string
	}{
		{"config", Config("bad mode %q", "x"), 7, `bad mode "x"`},
		{"decode", Decode("bad json"), 6, "bad json"},
		{"env", Env("CNI_IFNAME missing"), 4, "CNI_IFNAME missing"},
		{"version", Version("v"), 1, "v"},
		{"try again", TryAgain("busy"), 11, "busy"},
		{"unavailable", Unavailable("down"), 50, "down"},
		{"plain", base, Internal, "boom"},
		{"wrapped config keeps code", fmt.Errorf("add: %w", Config("mtu")), 7, "add: mtu"},
		{"library error", &types.Error{Code: 4, Msg: "netns"}, 4, "netns"},
		{"wrapped library error", fmt.Errorf("ipam: %w", &types.Error{Code: 11, Msg: "later"}), 11, "ipam: later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToCNI(tt.err)
			if got.Code != tt.code || got.Msg != tt.msg {
				t.Fatalf("ToCNI = %d %q, want %d %q", got.Code, got.Msg, tt.code, tt.msg)
			}
		})
	}
	if ToCNI(nil) != nil {
		t.Fatal("ToCNI(nil) != nil")
	}
	if !errors.Is(fmt.Errorf("x: %w", Config("y: %w", base)), base) {
		t.Fatal("coded errors must unwrap")
	}
}
