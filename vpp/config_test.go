package vpp_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/cnierr"
	"github.com/vmcni/vmcni/vpp"
)

func parse(t *testing.T, conf map[string]any, cniArgs string) (*vpp.NetConf, error) {
	t.Helper()
	base := map[string]any{"cniVersion": "1.1.0", "name": "n", "type": "vm-vpp", "bridgeDomain": 1}
	for k, v := range conf {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	data, _ := json.Marshal(base)
	c, err := vpp.ParseConfig(data, cniArgs)
	if err != nil {
		return nil, err
	}
	return c, c.ValidateForAdd()
}

func TestConfigDefaults(t *testing.T) {
	c, err := parse(t, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.APISocket != "/run/vpp/api.sock" || c.Timeout.Duration != 5*time.Second || c.Interface != "vhost-user" ||
		c.Network != "l2" || c.SocketDir != "/run/vmcni/vpp" || c.SocketDirMode != "0750" || c.Mode != "server" ||
		c.Queues != 1 || c.MTU != 1500 || c.StateDir != "/var/lib/cni/vmcni" {
		t.Errorf("defaults: %+v", c)
	}
	m := c.Memif
	if m.Role != "client" || m.Mode != "ethernet" || m.RingSize != 1024 || m.BufferSize != 2048 || m.RxQueues != 1 || m.TxQueues != 1 {
		t.Errorf("memif defaults: %+v", m)
	}
	c, _ = parse(t, map[string]any{"queues": 4}, "")
	if c.Memif.RxQueues != 4 || c.Memif.TxQueues != 4 {
		t.Errorf("memif queues do not default to queues: %+v", c.Memif)
	}
}

// TestConfigMACOverrides: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac.
func TestConfigMACOverrides(t *testing.T) {
	const a, b, c = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
	cases := []struct {
		name    string
		conf    map[string]any
		cniArgs string
		want    string
	}{
		{"config", map[string]any{"mac": a}, "", a},
		{"CNI_ARGS over config", map[string]any{"mac": a}, "IgnoreUnknown=1;MAC=" + b, b},
		{"args over CNI_ARGS", map[string]any{"args": map[string]any{"cni": map[string]any{"mac": c}}}, "MAC=" + b, c},
		{"runtimeConfig over all", map[string]any{"mac": a, "args": map[string]any{"cni": map[string]any{"mac": b}},
			"runtimeConfig": map[string]any{"mac": c}}, "MAC=" + a, c},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := parse(t, tc.conf, tc.cniArgs)
			if err != nil {
				t.Fatal(err)
			}
			if conf.MAC != tc.want {
				t.Errorf("mac %q, want %q", conf.MAC, tc.want)
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]any
		code uint
	}{
		{"no name", map[string]any{"name": nil}, 7},
		{"relative apiSocket", map[string]any{"apiSocket": "api.sock"}, 7},
		{"bad timeout", map[string]any{"timeout": "5"}, 6},
		{"timeout too short", map[string]any{"timeout": "1ms"}, 7},
		{"interface", map[string]any{"interface": "tap"}, 7},
		{"network", map[string]any{"network": "l4"}, 7},
		{"l2 without bridge domain", map[string]any{"bridgeDomain": nil}, 7},
		{"bridge domain too big", map[string]any{"bridgeDomain": 1 << 24}, 7},
		{"l3 without ipam", map[string]any{"network": "l3"}, 7},
		{"mode", map[string]any{"mode": "master"}, 7},
		{"queues", map[string]any{"queues": 0}, 7},
		{"queues too many", map[string]any{"queues": 256}, 7},
		{"memif role", map[string]any{"memif": map[string]any{"role": "slave"}}, 7},
		{"memif mode", map[string]any{"memif": map[string]any{"mode": "punt"}}, 7},
		{"memif ip on l2", map[string]any{"interface": "memif", "memif": map[string]any{"mode": "ip"}}, 7},
		{"ring size not power of 2", map[string]any{"memif": map[string]any{"ringSize": 1000}}, 7},
		{"buffer size", map[string]any{"memif": map[string]any{"bufferSize": 64}}, 7},
		{"secret too long", map[string]any{"memif": map[string]any{"secret": strings.Repeat("s", 24)}}, 7},
		{"mtu", map[string]any{"mtu": 10000}, 7},
		{"mac", map[string]any{"mac": "zz"}, 7},
		{"multicast mac", map[string]any{"mac": "01:00:5e:00:00:01"}, 7},
		{"vppMac equals mac", map[string]any{"mac": "02:00:00:00:00:01", "vppMac": "02:00:00:00:00:01"}, 7},
		{"relative stateDir", map[string]any{"stateDir": "state"}, 7},
		{"socketDir /", map[string]any{"socketDir": "/"}, 7},
		{"socketDirMode world-writable", map[string]any{"socketDirMode": "0777"}, 7},
		{"socketDirMode not octal", map[string]any{"socketDirMode": "rwx"}, 7},
		{"logLevel", map[string]any{"logLevel": "loud"}, 7},
		{"not json", map[string]any{"mtu": "big"}, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.conf, "")
			if err == nil {
				t.Fatal("accepted")
			}
			if got := cnierr.Code(err); got != tc.code {
				t.Errorf("code %d (%v), want %d", got, err, tc.code)
			}
		})
	}
}

func TestTagFormat(t *testing.T) {
	cid := strings.Repeat("f", 64)
	tag := vpp.Tag("a-network-name-that-is-quite-long-indeed", cid, "abcdefghijklmno")
	if len(tag) > 63 || !strings.HasPrefix(tag, vpp.TagPrefix) || !strings.HasSuffix(tag, "/abcdefghijklmno") {
		t.Errorf("tag %q (%d bytes)", tag, len(tag))
	}
	if vpp.Tag("n", "c1", "eth0") == vpp.Tag("n2", "c1", "eth0") || vpp.Tag("n", "c1", "eth0") == vpp.Tag("n", "c1", "eth1") {
		t.Error("tags collide")
	}
}
