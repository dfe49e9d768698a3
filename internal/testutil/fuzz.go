package testutil

import (
	"testing"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// AddConfigSeeds adds each plugin config to f's corpus twice: with no
// CNI_ARGS and with the IgnoreUnknown and MAC arguments runtimes send.
func AddConfigSeeds(f *testing.F, configs ...string) {
	configs = append(configs, prevResultSeeds...)
	for _, c := range configs {
		f.Add([]byte(c), "")
		f.Add([]byte(c), "IgnoreUnknown=1;MAC=02:00:00:00:00:09")
	}
}

// prevResultSeeds are every parser's seeds with a prevResult of each
// version the CNI library converts, and with null entries (which the
// library's conversion of 0.4.0 dereferences).
var prevResultSeeds = []string{
	`{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","address":"10.1.0.2/24","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}}`,
	`{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","interfaces":[null],"ips":[null],"routes":[null]}}`,
	`{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","interfaces":[null],"ips":[{"address":"10.1.0.2/24","interface":0}]}}`,
}

// ExpectCode is a fuzz target's contract on one call: err is nil or a CNI
// error with one of codes (never a bare error, never another code). It
// reports whether err was nil, so a target stops at the first rejection.
func ExpectCode(t *testing.T, what string, err error, codes ...uint) bool {
	t.Helper()
	if err == nil {
		return true
	}
	c := cnierr.Code(err)
	for _, want := range codes {
		if c == want {
			return false
		}
	}
	t.Fatalf("%s error with code %d, want one of %v: %v", what, c, codes, err)
	return false
}

// AssertCode fails t unless err carries CNI error code want.
func AssertCode(t testing.TB, err error, want uint) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want CNI error code %d", want)
	}
	if got := cnierr.Code(err); got != want {
		t.Fatalf("CNI error code %d (%v), want %d", got, err, want)
	}
}
