package hint_test

import (
	"encoding/json"
	"testing"

	"github.com/vmcni/vmcni/pkg/hint"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and a
// hint it accepts must have a device name, survive a JSON round trip and
// decode again to the same device.
//
//	go test ./pkg/hint/ -run XXX -fuzz FuzzDecode -fuzztime 5s
func FuzzDecode(f *testing.F) {
	guest := `"guest":{"mac":"2e:7d:1c:22:40:07","mtu":1500,"ips":[{"address":"10.22.0.5/24","gateway":"10.22.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.22.0.1"}],"dns":{"nameservers":["10.22.0.1"]}}`
	head := `{"hintVersion":"1","plugin":"vm-bridge","network":"n","containerID":"c1","ifName":"eth0",`
	for _, seed := range []string{
		head + `"netns":"/var/run/netns/c1","kind":"tap","tap":{"name":"tap_eth0","netns":"/var/run/netns/c1","queues":1,"vnetHdr":true,"wiring":"tcfilter"},` + guest + `}`,
		head + `"netns":"/var/run/netns/c1","kind":"macvtap","macvtap":{"name":"mvt_eth0","netns":"/var/run/netns/c1","ifindex":5,"major":243,"minor":1,"mode":"passthru","queues":2,"vnetHdr":true},` + guest + `}`,
		head + `"kind":"vhost-user","vhostUser":{"socket":"/run/vmcni/vhost-user/c1-eth0/sock","mode":"server","queues":1},` + guest + `}`,
		head + `"kind":"vfio","vfio":{"pciAddress":"0000:3b:02.1","iommuGroup":"42","devicePath":"/dev/vfio/42"},` + guest + `}`,
		head + `"kind":"memif","memif":{"socket":"/run/vmcni/vpp/c1/eth0/memif.sock","role":"client","mode":"ethernet","id":0,"queues":1,"ringSize":1024},` + guest + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := hint.Decode(data)
		if err != nil {
			return
		}
		name := h.DeviceName()
		again, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("marshal accepted hint: %v", err)
		}
		h2, err := hint.Decode(again)
		if err != nil {
			t.Fatalf("accepted hint does not decode after a round trip: %v\n%s", err, again)
		}
		if h2.DeviceName() != name || h2.Kind != h.Kind {
			t.Fatalf("round trip changed the device: %q/%s -> %q/%s", name, h.Kind, h2.DeviceName(), h2.Kind)
		}
	})
}
