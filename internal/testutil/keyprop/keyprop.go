// Package keyprop checks that names derived from attachment keys never
// collide: random keys shaped to collide where naive naming would. It
// imports nothing of vmcni, so any package's internal tests can use it.
package keyprop

import (
	"fmt"
	"math/rand/v2"
)

// Key is an attachment key (container ID, interface name).
type Key struct{ ContainerID, IfName string }

// RandomKeys returns n distinct valid attachment keys, crafted to collide
// where naive naming would: container IDs and ifnames that share prefixes
// and contain the separators "_", "-" and ".", and ifnames of 15 bytes.
func RandomKeys(seed uint64, n int) []Key {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const alnum = "abcdef0123456789"
	const more = alnum + "_-."
	word := func(first string, rest string, max int) string {
		b := []byte{first[r.IntN(len(first))]}
		for l := r.IntN(max); l > 0; l-- {
			b = append(b, rest[r.IntN(len(rest))])
		}
		return string(b)
	}
	seen := map[Key]bool{}
	var keys []Key
	for len(keys) < n {
		batch := []Key{{ContainerID: word(alnum, more, 12), IfName: word(alnum, more, 14)}}
		if r.IntN(4) == 0 { // the "a-b"+"c" versus "a"+"b-c" shapes
			a, b, sep, c := word(alnum, alnum, 4), word(alnum, alnum, 4), "_-."[r.IntN(3)], word(alnum, alnum, 4)
			batch = []Key{
				{ContainerID: fmt.Sprintf("%s%c%s", a, sep, b), IfName: c},
				{ContainerID: a, IfName: fmt.Sprintf("%s%c%s", b, sep, c)},
			}
		}
		for _, k := range batch {
			if k.IfName == "." || k.IfName == ".." || len(k.IfName) > 15 || seen[k] || len(keys) == n {
				continue
			}
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// AssertInjective fails t when name maps two of keys to one value.
func AssertInjective(t interface {
	Helper()
	Fatalf(string, ...any)
}, what string, keys []Key, name func(Key) string) {
	t.Helper()
	owner := map[string]Key{}
	for _, k := range keys {
		v := name(k)
		if prev, ok := owner[v]; ok {
			t.Fatalf("%s: %+v and %+v both get %q", what, prev, k, v)
		}
		owner[v] = k
	}
}
