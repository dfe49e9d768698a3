package vpp_test

import (
	"testing"

	"github.com/vmcni/vmcni/pkg/cnierr"
	"github.com/vmcni/vmcni/vpp"
)

// FuzzParseConfig feeds arbitrary stdin and CNI_ARGS to ParseConfig,
// Validate and ValidateForAdd: they must never panic, ParseConfig fails
// only with code 6 or 4, the validators only with code 7.
//
//	go test ./vpp/ -run XXX -fuzz FuzzParseConfig -fuzztime 5s
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","bridgeDomain":1}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","interface":"vhost-user","network":"l2","bridgeDomain":42,"mode":"client","queues":2,"mtu":9000,"mac":"02:00:00:00:00:01","vppMac":"02:00:00:00:00:02","timeout":"2s","apiSocket":"/run/vpp/api.sock","socketDir":"/run/vmcni/vpp","socketDirMode":"0770","group":"0"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"vm-vpp","interface":"memif","network":"l3","memif":{"role":"server","mode":"ip","ringSize":1024,"bufferSize":2048,"rxQueues":2,"txQueues":2,"secret":"s"},"ipam":{"type":"static","addresses":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}]}}`,
		`{"cniVersion":"1.0.0","name":"n","type":"vm-vpp","bridgeDomain":7,"args":{"cni":{"mac":"02:00:00:00:00:03"}},"runtimeConfig":{"mac":"02:00:00:00:00:04","CNIDeviceInfoFile":"/tmp/d"},"stateDir":"/var/lib/x","logFile":"/tmp/l"}`,
	} {
		f.Add([]byte(seed), "")
		f.Add([]byte(seed), "IgnoreUnknown=1;MAC=02:00:00:00:00:09")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		conf, err := vpp.ParseConfig(stdin, cniArgs)
		if err != nil {
			if c := cnierr.Code(err); c != 6 && c != 4 {
				t.Fatalf("ParseConfig error with code %d: %v", c, err)
			}
			return
		}
		if err := conf.Validate(); err != nil {
			if c := cnierr.Code(err); c != 7 {
				t.Fatalf("Validate error with code %d: %v", c, err)
			}
			return
		}
		if err := conf.ValidateForAdd(); err != nil && cnierr.Code(err) != 7 {
			t.Fatalf("ValidateForAdd error with code %d: %v", cnierr.Code(err), err)
		}
	})
}
