// Package naming derives stable short names (links, VPP tags, OVS ports)
// from an attachment's identity, so DEL and GC find what ADD created even
// without a record.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
)

// Digest is the hex SHA-256 of parts, each followed by a NUL (so "a","bc"
// and "ab","c" differ). Callers keep a prefix of it.
func Digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
