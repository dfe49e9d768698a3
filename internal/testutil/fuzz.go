package testutil

import (
	"testing"

	"github.com/vmcni/vmcni/internal/cnierr"
)

// AddConfigSeeds adds each plugin config to f's corpus twice: with no
// CNI_ARGS and with the IgnoreUnknown and MAC arguments runtimes send.
func AddConfigSeeds(f *testing.F, configs ...string) {
	for _, c := range configs {
		f.Add([]byte(c), "")
		f.Add([]byte(c), "IgnoreUnknown=1;MAC=02:00:00:00:00:09")
	}
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
