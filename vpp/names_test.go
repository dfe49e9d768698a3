package vpp

import (
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/testutil/keyprop"
	"github.com/vmcni/vmcni/vpp/vppapi"
)

// TestGatewayTag: the gateway loopback's tag fits VPP's tag, is no
// attachment tag (GC's parser rejects it) and is told apart per network;
// an untagged loopback is the network's only with its MAC.
func TestGatewayTag(t *testing.T) {
	tag := GatewayTag("a-network")
	if len(tag) > 63 || !strings.HasPrefix(tag, TagPrefix+networkHash("a-network")+"/") {
		t.Errorf("gateway tag %q", tag)
	}
	if _, ok := parseTag(tag); ok {
		t.Errorf("parseTag accepts the gateway tag %q", tag)
	}
	if _, ok := parseTag(Tag("a-network", "c1", "eth0")); !ok {
		t.Error("parseTag rejects an attachment tag")
	}
	if GatewayTag("a-network") == GatewayTag("b-network") || gatewayMAC("a-network").String() == gatewayMAC("b-network").String() {
		t.Error("gateway tags or MACs collide")
	}
	if mac := gatewayMAC("a-network"); len(mac) != 6 || mac[0]&0x03 != 0x02 {
		t.Errorf("gateway MAC %s is not locally administered unicast", mac)
	}
	for _, c := range []struct {
		i    vppapi.Interface
		want bool
	}{
		{vppapi.Interface{Name: "loop3", Tag: tag}, true},
		{vppapi.Interface{Name: "loop3", MAC: gatewayMAC("a-network")}, true},
		{vppapi.Interface{Name: "loop3", MAC: gatewayMAC("b-network")}, false},
		{vppapi.Interface{Name: "loop3", Tag: "other", MAC: gatewayMAC("a-network")}, false},
		{vppapi.Interface{Name: "VirtualEthernet0/0/0", MAC: gatewayMAC("a-network")}, false},
	} {
		if got := isGatewayLoopback(c.i, "a-network"); got != c.want {
			t.Errorf("isGatewayLoopback(%+v) = %v", c.i, got)
		}
	}
}

// TestTagsInjective: no two attachments of a network share a VPP tag.
func TestTagsInjective(t *testing.T) {
	keyprop.AssertInjective(t, "VPP tag", keyprop.RandomKeys(4, 10000), func(k keyprop.Key) string {
		return Tag("net", k.ContainerID, k.IfName)
	})
}
