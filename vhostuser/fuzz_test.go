package vhostuser_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vhostuser"
)

// FuzzParseConfig feeds arbitrary stdin to ParseConfig and Validate, and
// the accepted socketDir to PathsFor: they must never panic, ParseConfig
// fails only with code 6 and Validate only with code 7.
//
//	go test ./vhostuser/ -run XXX -fuzz FuzzParseConfig -fuzztime 5s
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vhostuser","backend":"ovs-dpdk","bridge":"br0"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vhostuser","backend":"ovs-dpdk","bridge":"br-dpdk","ovsdb":"tcp:127.0.0.1:6640","ovsTimeout":10,"vlan":100,"mtu":9000,"queues":4,"mac":"02:00:00:00:00:01"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vhostuser","backend":"none","mode":"client","socketDir":"/run/vmcni/vhu","socketDirMode":"0770","group":"0","stateDir":"/var/lib/x"}`,
		`{"cniVersion":"1.0.0","name":"n","type":"vm-vhostuser","backend":"none","runtimeConfig":{"mac":"02:00:00:00:00:02","CNIDeviceInfoFile":"/tmp/d"},"logFile":"/tmp/l","logLevel":"info"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vhostuser","backend":"none","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"sock","sandbox":"c1","socketPath":"/run/x/sock"}]}}`,
	} {
		f.Add([]byte(seed), "c1", "eth0")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, containerID, ifName string) {
		conf, err := vhostuser.ParseConfig(stdin, "")
		if !testutil.ExpectCode(t, "ParseConfig", err, 6) || !testutil.ExpectCode(t, "Validate", conf.Validate(), 7) {
			return
		}
		_, err = vhostuser.PathsFor(conf.SocketDir, containerID, ifName)
		testutil.ExpectCode(t, "PathsFor", err, 4, 7)
	})
}

// noSwitch is a backend with nothing in it.
type noSwitch struct{}

func (noSwitch) AddPort(context.Context, vhostuser.Port) error           { return nil }
func (noSwitch) DelPort(context.Context, string) error                   { return nil }
func (noSwitch) Ports(context.Context, string) ([]vhostuser.Port, error) { return nil, nil }
func (noSwitch) Ready(context.Context) error                             { return nil }

// FuzzDel runs DEL of an attachment no ADD made with any config (no OVS:
// an empty backend is injected): it never panics, and fails only when IPAM
// must be asked (no IPAM plugin is installed here) or the config does not
// decode.
func FuzzDel(f *testing.F) {
	f.Setenv("CNI_PATH", f.TempDir())
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vhostuser","backend":"none","socketDir":"/tmp/vmct-fuzz-vhu"}`)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		args := testutil.FuzzDelArgs(stdin, cniArgs, t.TempDir())
		p := vhostuser.New().WithSwitch(func(*vhostuser.NetConf) vhostuser.Switch { return noSwitch{} })
		testutil.ExpectDelContract(t, args, p.Del(args))
	})
}

// TestDelOfNothing: 10,000 DELs of attachments that do not exist, with
// random keys and configs (ADD would refuse many of them; no OVS: an empty
// backend is injected), all succeed and leave nothing in the state dir
// (the reliability issue's property).
func TestDelOfNothing(t *testing.T) {
	t.Setenv("CNI_PATH", t.TempDir())
	p := vhostuser.New().WithSwitch(func(*vhostuser.NetConf) vhostuser.Switch { return noSwitch{} })
	testutil.DelProperty(t, 13, 10000, map[string]any{"name": "vmct-delprop", "type": "vm-vhostuser"}, map[string][]any{
		"cniVersion":    {"0.4.0", "1.0.0", "1.1.0"},
		"backend":       {"none", "ovs-dpdk", "x"},
		"bridge":        {"br-dpdk", "", "a b"},
		"ovsdb":         {"unix:/nonexistent/db.sock", "bogus"},
		"mode":          {"server", "client", "x"},
		"socketDir":     {"/tmp/vmct-delprop-vhu", "relative", "", "/tmp/" + strings.Repeat("d", 120)},
		"socketDirMode": {"0700", "0777", "x"},
		"group":         {"0", "root", "vmct-no-such-group"},
		"vlan":          {0, 100, 4095, 4096, -1},
		"queues":        {0, 1, 4, 1025},
		"mtu":           {0, 1500, 67},
		"mac":           {"02:00:00:00:00:01", "zz"},
		"runtimeConfig": {map[string]any{"mac": "x"}, map[string]any{"CNIDeviceInfoFile": "relative"}, map[string]any{"deviceID": "vhost-net1"}},
	}, p.Del)
}
