package bridgetap_test

import (
	"testing"

	bridgetap "github.com/vmcni/vmcni/bridge-tap"
	"github.com/vmcni/vmcni/internal/testutil"
)

// FuzzParseConfig feeds arbitrary stdin and CNI_ARGS to ParseConfig and
// Validate: they must never panic, ParseConfig fails only with code 6
// (decode) or 4 (CNI_ARGS), and Validate only with code 7.
//
//	go test ./bridge-tap/ -run XXX -fuzz FuzzParseConfig -fuzztime 5s
func FuzzParseConfig(f *testing.F) {
	ipam := `"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}`
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge",`+ipam+`}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","mode":"bridge","bridge":"br0","mtu":1400,"isGateway":true,"ipMasq":true,`+ipam+`}`,
		`{"cniVersion":"1.0.0","name":"n","type":"vm-bridge","mode":"macvtap","macvtapMode":"bridge","queues":4,"mac":"02:00:00:00:00:01","tapOwner":1000,"tapGroup":1000,"vnetHdr":false,`+ipam+`}`,
		`{"cniVersion":"0.4.0","name":"n","type":"vm-bridge","mode":"tcfilter","stateDir":"/run/x","logFile":"/tmp/l","logLevel":"debug","args":{"cni":{"mac":"02:00:00:00:00:02"}},"runtimeConfig":{"mac":"02:00:00:00:00:03","CNIDeviceInfoFile":"/tmp/d"}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}}`,
	)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		conf, err := bridgetap.ParseConfig(stdin, cniArgs)
		if !testutil.ExpectCode(t, "ParseConfig", err, 6, 4) || !testutil.ExpectCode(t, "Validate", conf.Validate(), 7) {
			return
		}
		testutil.ExpectCode(t, "ValidateForAdd", conf.ValidateForAdd(), 7)
	})
}

// FuzzDel runs DEL of an attachment no ADD made with any config (state
// dir and attachment forced into the test): it never panics, and fails
// only when IPAM must be asked (no IPAM plugin is installed here) or the
// config does not decode.
func FuzzDel(f *testing.F) {
	testutil.RequiresRoot(f)
	f.Setenv("CNI_PATH", f.TempDir())
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","mode":"macvtap","ipMasq":true}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-bridge","mode":"bridge","ipam":{"type":"host-local"}}`)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		args := testutil.FuzzDelArgs(stdin, cniArgs, t.TempDir())
		testutil.ExpectDelContract(t, args, bridgetap.New().Del(args))
	})
}

// TestDelOfNothing: 10,000 DELs of attachments that do not exist, with
// random keys and configs (ADD would refuse many of them), all succeed and
// leave nothing in the state dir (the reliability issue's property).
func TestDelOfNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	t.Setenv("CNI_PATH", t.TempDir())
	testutil.DelProperty(t, 11, 10000, map[string]any{"name": "vmct-delprop", "type": "vm-bridge"}, map[string][]any{
		"cniVersion":    {"0.4.0", "1.0.0", "1.1.0"},
		"mode":          {"tcfilter", "bridge", "macvtap", "bogus", ""},
		"bridge":        {"vmctdelprop0", "", "bbbbbbbbbbbbbbbbb", "a/b"},
		"mtu":           {0, 1500, 67, 65536, -1},
		"queues":        {0, 1, 4, 257, -3},
		"tapOwner":      {0, 4294967295},
		"macvtapMode":   {"bridge", "vepa", "x"},
		"isGateway":     {true, false},
		"ipMasq":        {true, false},
		"mac":           {"02:00:00:00:00:01", "zz", "ff:ff:ff:ff:ff:ff"},
		"runtimeConfig": {map[string]any{"mac": "x"}, map[string]any{"CNIDeviceInfoFile": "relative"}, map[string]any{"deviceID": "0000:00:01.0"}},
	}, bridgetap.New().Del)
}
