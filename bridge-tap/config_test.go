package bridgetap

import (
	"testing"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
)

// TestMACOverrideOrder: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac,
// all above the plain "mac" key.
func TestMACOverrideOrder(t *testing.T) {
	const (
		plain   = `"mac":"02:00:00:00:00:01"`
		args    = `"args":{"cni":{"mac":"02:00:00:00:00:03"}}`
		runtime = `"runtimeConfig":{"mac":"02:00:00:00:00:04"}`
		envMAC  = "IgnoreUnknown=1;MAC=02:00:00:00:00:02"
	)
	tests := []struct {
		name   string
		fields []string
		env    string
		want   string
	}{
		{"none", nil, "", ""},
		{"plain key", []string{plain}, "", "02:00:00:00:00:01"},
		{"CNI_ARGS beats plain key", []string{plain}, envMAC, "02:00:00:00:00:02"},
		{"args beats CNI_ARGS", []string{plain, args}, envMAC, "02:00:00:00:00:03"},
		{"runtimeConfig beats args", []string{plain, args, runtime}, envMAC, "02:00:00:00:00:04"},
		{"runtimeConfig beats CNI_ARGS", []string{runtime}, envMAC, "02:00:00:00:00:04"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin := `{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","ipam":{"type":"host-local"}`
			for _, f := range tt.fields {
				stdin += "," + f
			}
			stdin += "}"
			conf, err := ParseConfig([]byte(stdin), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if err := conf.ValidateForAdd(); err != nil {
				t.Fatal(err)
			}
			if conf.MAC != tt.want {
				t.Fatalf("mac = %q, want %q", conf.MAC, tt.want)
			}
		})
	}
}

// TestDefaults: every optional field's documented default.
func TestDefaults(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","ipam":{"type":"host-local"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.ValidateForAdd(); err != nil {
		t.Fatal(err)
	}
	if conf.Mode != ModeTCFilter || conf.Bridge != DefaultBridge || conf.Queues != 1 ||
		conf.MacvtapMode != "passthru" || !*conf.VnetHdr || !*conf.DisableBridgeNF ||
		conf.StateDir != "/var/lib/cni/vmcni" || conf.Chained() {
		t.Fatalf("unexpected defaults: %+v", conf)
	}
}

// TestNames: link names fit in 15 bytes and are stable.
func TestNames(t *testing.T) {
	n := namesFor("container-id", "eth0", ModeBridge, true)
	if n.Tap != "tap_eth0" || n.NetnsBridge != "br_eth0" || len(n.HostVeth) != 14 {
		t.Fatalf("names: %+v", n)
	}
	long := namesFor("c", "averylongname15", ModeMacvtap, false)
	if len(long.Macvtap) > 15 || long.HostVeth != "" {
		t.Fatalf("long names: %+v", long)
	}
	if again := namesFor("container-id", "eth0", ModeBridge, true); again != n {
		t.Fatal("names are not deterministic")
	}
}

// TestHostVethNamesInjective: no two attachments share a host veth.
func TestHostVethNamesInjective(t *testing.T) {
	keyprop.AssertInjective(t, "host veth", keyprop.RandomKeys(3, 10000), func(k keyprop.Key) string {
		return namesFor(k.ContainerID, k.IfName, ModeTCFilter, true).HostVeth
	})
}
