package hint

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// AliasPrefix starts the alias vmcni plugins put on the devices they create
// in a pod netns (IFLA_IFALIAS), so that a runtime scanning the netns
// (Kata-style, without the CNI result or hint file) still learns what the
// guest must use: "vmcni:guest-mac=<mac>;queues=<n>".
const AliasPrefix = "vmcni:"

// DeviceAlias is the parsed form of a vmcni device alias.
type DeviceAlias struct {
	GuestMAC string
	Queues   int
}

// String renders the alias.
func (a DeviceAlias) String() string {
	return fmt.Sprintf("%sguest-mac=%s;queues=%d", AliasPrefix, a.GuestMAC, a.Queues)
}

// ParseDeviceAlias parses an alias written by String; ok is false for
// aliases vmcni did not write.
func ParseDeviceAlias(s string) (DeviceAlias, bool) {
	rest, found := strings.CutPrefix(s, AliasPrefix)
	if !found {
		return DeviceAlias{}, false
	}
	a := DeviceAlias{Queues: 1}
	for _, kv := range strings.Split(rest, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "guest-mac":
			if _, err := net.ParseMAC(v); err != nil {
				return DeviceAlias{}, false
			}
			a.GuestMAC = v
		case "queues":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				a.Queues = n
			}
		}
	}
	return a, a.GuestMAC != ""
}
