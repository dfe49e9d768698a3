package vhostuser

import (
	"testing"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
)

// TestPortNamesInjective: no two attachments share an OVS port.
func TestPortNamesInjective(t *testing.T) {
	keyprop.AssertInjective(t, "OVS port", keyprop.RandomKeys(5, 10000), func(k keyprop.Key) string {
		return portName(k.ContainerID, k.IfName)
	})
}
