package sriov_test

import (
	"testing"

	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
)

// FuzzParseConfig feeds arbitrary stdin and CNI_ARGS to ParseConfig and
// Validate (neither touches sysfs or netlink): they must never panic,
// ParseConfig fails only with code 6 or 4 and Validate only with code 7;
// an accepted deviceID is a PCI address.
//
//	go test ./sriov/ -run XXX -fuzz FuzzParseConfig -fuzztime 5s
func FuzzParseConfig(f *testing.F) {
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-sriov","deviceID":"0000:3b:02.1"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-sriov","mode":"vfio","deviceID":"0000:3b:02.1","vlan":100,"vlanQoS":3,"vlanProto":"802.1ad","spoofchk":"off","trust":"on","link_state":"enable","min_tx_rate":10,"max_tx_rate":100,"bindTimeout":"3s"}`,
		`{"cniVersion":"1.0.0","name":"n","type":"vm-sriov","mode":"netdev","mac":"02:00:00:00:00:01","mtu":9000,"sysfsRoot":"/tmp/sys","stateDir":"/var/lib/x","runtimeConfig":{"deviceID":"0000:3B:02.2","mac":"02:00:00:00:00:03","CNIDeviceInfoFile":"/tmp/d"}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-sriov","args":{"cni":{"mac":"02:00:00:00:00:02"}},"ipam":{"type":"static","addresses":[{"address":"10.0.0.2/24"}]}}`,
	)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		conf, err := sriov.ParseConfig(stdin, cniArgs)
		if !testutil.ExpectCode(t, "ParseConfig", err, 6, 4) || !testutil.ExpectCode(t, "Validate", conf.Validate(), 7) {
			return
		}
		if conf.DeviceID != "" && !sriov.ValidPCIAddress(conf.DeviceID) {
			t.Fatalf("Validate accepted deviceID %q", conf.DeviceID)
		}
	})
}

// FuzzDel runs DEL of an attachment no ADD made with any config: it never
// panics, touches no VF, and fails only when IPAM must be asked (no IPAM
// plugin is installed here) or the config does not decode.
func FuzzDel(f *testing.F) {
	f.Setenv("CNI_PATH", f.TempDir())
	testutil.AddConfigSeeds(f,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-sriov","mode":"vfio","deviceID":"0000:3b:02.1","sysfsRoot":"/nonexistent"}`)
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		args := testutil.FuzzDelArgs(stdin, cniArgs, t.TempDir())
		testutil.ExpectDelContract(t, args, sriov.New().Del(args))
	})
}

// TestDelOfNothing: 10,000 DELs of attachments that do not exist, with
// random keys and configs (ADD would refuse many of them), all succeed,
// touch no VF (the sysfs root does not exist) and leave nothing in the
// state dir (the reliability issue's property).
func TestDelOfNothing(t *testing.T) {
	t.Setenv("CNI_PATH", t.TempDir())
	testutil.DelProperty(t, 12, 10000, map[string]any{"name": "vmct-delprop", "type": "vm-sriov", "sysfsRoot": "/nonexistent"},
		map[string][]any{
			"cniVersion":    {"0.4.0", "1.0.0", "1.1.0"},
			"mode":          {"vfio", "netdev", "x", ""},
			"deviceID":      {"0000:3b:02.1", "bogus", "", "../0000:3b:02.1"},
			"vlan":          {0, 100, 4095, 4096, -1},
			"vlanQoS":       {0, 7, 8},
			"vlanProto":     {"802.1q", "802.1ad", "x"},
			"spoofchk":      {"on", "off", "x"},
			"trust":         {"on", "off", "x"},
			"mtu":           {0, 1500, 67, -1},
			"mac":           {"02:00:00:00:00:01", "zz", "01:00:00:00:00:01"},
			"runtimeConfig": {map[string]any{"deviceID": "0000:3B:02.2"}, map[string]any{"deviceID": "x"}, map[string]any{"CNIDeviceInfoFile": "relative"}},
		}, sriov.New().Del)
}
