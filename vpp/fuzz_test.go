package vpp_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/vpp"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// FuzzParseConfig feeds arbitrary stdin and CNI_ARGS to ParseConfig,
// Validate and ValidateForAdd: they must never panic, ParseConfig fails
// only with code 6 or 4, the validators only with code 7.
//
//	go test ./vpp/ -run XXX -fuzz FuzzParseConfig -fuzztime 5s
func FuzzParseConfig(f *testing.F) {
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","bridgeDomain":1}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","interface":"vhost-user","network":"l2","bridgeDomain":42,"mode":"client","queues":2,"mtu":9000,"mac":"02:00:00:00:00:01","vppMac":"02:00:00:00:00:02","timeout":"2s","apiSocket":"/run/vpp/api.sock","socketDir":"/run/vmcni/vpp","socketDirMode":"0770","group":"0"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","interface":"memif","network":"l3","memif":{"role":"server","mode":"ip","ringSize":1024,"bufferSize":2048,"rxQueues":2,"txQueues":2,"secret":"s"},"ipam":{"type":"static","addresses":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}]}}`,
		`{"cniVersion":"1.0.0","name":"n","type":"vm-vpp","bridgeDomain":7,"args":{"cni":{"mac":"02:00:00:00:00:03"}},"runtimeConfig":{"mac":"02:00:00:00:00:04","CNIDeviceInfoFile":"/tmp/d"},"stateDir":"/var/lib/x","logFile":"/tmp/l"}`,
	)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		conf, err := vpp.ParseConfig(stdin, cniArgs)
		if !testutil.ExpectCode(t, "ParseConfig", err, 6, 4) || !testutil.ExpectCode(t, "Validate", conf.Validate(), 7) {
			return
		}
		testutil.ExpectCode(t, "ValidateForAdd", conf.ValidateForAdd(), 7)
	})
}

// FuzzDel runs DEL of an attachment no ADD made with any config (VPP not
// running: the connector refuses): it never panics, and fails only when
// IPAM must be asked (no IPAM plugin is installed here) or the config
// does not decode.
func FuzzDel(f *testing.F) {
	f.Setenv("CNI_PATH", f.TempDir())
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","bridgeDomain":1,"socketDir":"/tmp/vmct-fuzz-vpp"}`)
	refused := func(context.Context, string, time.Duration) (vppapi.Conn, error) { return nil, syscall.ECONNREFUSED }
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		args := testutil.FuzzDelArgs(stdin, cniArgs, t.TempDir())
		testutil.ExpectDelContract(t, args, vpp.New().WithConnector(refused).Del(args))
	})
}

// TestDelOfNothing: 10,000 DELs of attachments that do not exist, with
// random keys and configs (ADD would refuse many of them; VPP not
// running: the connector refuses), all succeed and leave nothing in the
// state dir (the reliability issue's property).
func TestDelOfNothing(t *testing.T) {
	t.Setenv("CNI_PATH", t.TempDir())
	refused := func(context.Context, string, time.Duration) (vppapi.Conn, error) { return nil, syscall.ECONNREFUSED }
	testutil.DelProperty(t, 14, 10000, map[string]any{"name": "vmct-delprop", "type": "vm-vpp"}, map[string][]any{
		"cniVersion":    {"0.4.0", "1.0.0", "1.1.0"},
		"interface":     {"vhost-user", "memif", "x"},
		"network":       {"l2", "l3", "x"},
		"bridgeDomain":  {0, 1, 42, -1},
		"mode":          {"server", "client", "x"},
		"queues":        {0, 1, 4, 1025},
		"mtu":           {0, 1500, 67},
		"apiSocket":     {"/nonexistent/api.sock", "relative"},
		"socketDir":     {"/tmp/vmct-delprop-vpp", "relative", "", "/tmp/" + strings.Repeat("d", 120)},
		"socketDirMode": {"0700", "0777", "x"},
		"group":         {"0", "vmct-no-such-group"},
		"memif":         {map[string]any{"role": "server", "ringSize": 1000}, map[string]any{"role": "x", "secret": "s"}},
		"mac":           {"02:00:00:00:00:01", "zz"},
		"vppMac":        {"02:00:00:00:00:02", "zz"},
		"runtimeConfig": {map[string]any{"mac": "x"}, map[string]any{"CNIDeviceInfoFile": "relative"}},
	}, vpp.New().WithConnector(refused).Del)
}
