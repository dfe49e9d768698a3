package sriov

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/cnierr"
)

func parse(t *testing.T, fields, env string) (*NetConf, error) {
	t.Helper()
	stdin := `{"cniVersion":"1.1.0","name":"n","type":"vm-sriov"` + fields + `}`
	conf, err := ParseConfig([]byte(stdin), env)
	if err != nil {
		return nil, err
	}
	return conf, conf.Validate()
}

// TestValidate: every invalid setting is refused with code 7 before any
// side effect (ParseConfig and Validate touch neither sysfs nor netlink).
func TestValidate(t *testing.T) {
	tests := []struct {
		name, fields string
		code         uint
	}{
		{"bad PCI address", `,"deviceID":"3b:02.1"`, 7},
		{"PCI address with junk", `,"deviceID":"0000:3b:02.1/../x"`, 7},
		{"PCI function 8", `,"deviceID":"0000:3b:02.8"`, 7},
		{"bad runtimeConfig deviceID", `,"runtimeConfig":{"deviceID":"nope"}`, 7},
		{"vlan 5000", `,"vlan":5000`, 7},
		{"negative vlan", `,"vlan":-1`, 7},
		{"qos 9", `,"vlan":10,"vlanQoS":9`, 7},
		{"qos without vlan", `,"vlanQoS":3`, 7},
		{"802.1ad without vlan", `,"vlanProto":"802.1ad"`, 7},
		{"unknown vlanProto", `,"vlan":10,"vlanProto":"802.1x"`, 7},
		{"min above max rate", `,"min_tx_rate":200,"max_tx_rate":100`, 7},
		{"negative rate", `,"max_tx_rate":-1`, 7},
		{"bad MAC", `,"mac":"zz:00:00:00:00:01"`, 7},
		{"multicast MAC", `,"mac":"01:00:5e:00:00:01"`, 7},
		{"zero MAC", `,"mac":"00:00:00:00:00:00"`, 7},
		{"bad MAC in runtimeConfig", `,"runtimeConfig":{"mac":"x"}`, 7},
		{"bad spoofchk", `,"spoofchk":"yes"`, 7},
		{"bad trust", `,"trust":"true"`, 7},
		{"bad link_state", `,"link_state":"up"`, 7},
		{"bad mode", `,"mode":"vdpa"`, 7},
		{"relative sysfsRoot", `,"sysfsRoot":"tmp/root"`, 7},
		{"relative stateDir", `,"stateDir":"state"`, 7},
		{"bad mtu", `,"mtu":20`, 7},
		{"bad bindTimeout", `,"bindTimeout":"soon"`, 7},
		{"bad log level", `,"logLevel":"loud"`, 7},
		{"relative device-info file", `,"runtimeConfig":{"CNIDeviceInfoFile":"x.json"}`, 7},
		{"wrong type", `,"vlan":"10"`, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.fields, "")
			if err == nil {
				t.Fatal("accepted")
			}
			if got := cnierr.Code(err); got != tt.code {
				t.Fatalf("code %d, want %d (%v)", got, tt.code, err)
			}
		})
	}
	if _, err := parse(t, "", "MAC"); cnierr.Code(err) != 4 {
		t.Fatalf("bad CNI_ARGS: %v", err)
	}
}

// TestValidConfigs: edge values that must pass.
func TestValidConfigs(t *testing.T) {
	for _, fields := range []string{
		`,"deviceID":"0000:3b:02.1","vlan":4094,"vlanQoS":7,"vlanProto":"802.1ad"`,
		`,"deviceID":"0000:3B:1f.7"`,
		`,"deviceID":"10000:00:02.0"`,
		`,"min_tx_rate":500,"max_tx_rate":0`,
		`,"min_tx_rate":100,"max_tx_rate":100,"link_state":"disable","spoofchk":"off","trust":"on"`,
		`,"mode":"vfio","bindTimeout":"250ms","mtu":9000`,
	} {
		if _, err := parse(t, fields, ""); err != nil {
			t.Fatalf("%s: %v", fields, err)
		}
	}
}

// TestDefaults: every optional field's documented default.
func TestDefaults(t *testing.T) {
	c, err := parse(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeNetdev || c.SysfsRoot != "/" || *c.Vlan != 0 || *c.VlanQoS != 0 || c.VlanProto != VlanProto8021Q ||
		c.Spoofchk != "on" || c.Trust != "off" || c.LinkState != "" || c.MinTxRate != nil || c.MaxTxRate != nil ||
		c.StateDir != "/var/lib/cni/vmcni" || c.bindTimeout != DefaultBindTimeout || c.DeviceID != "" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	want := c.desired(VFState{MAC: "00:00:00:00:00:00", LinkState: 2, MinTxRate: 5, MaxTxRate: 50}, nil)
	if want.LinkState != 2 || want.MinTxRate != 5 || want.MaxTxRate != 50 || !want.Spoofchk || want.Trust || want.VlanProto != 0x8100 {
		t.Fatalf("defaults must leave link state and rates alone and force spoofchk on, trust off: %+v", want)
	}
}

// TestOverrideOrder: MAC from CNI_ARGS < args.cni.mac < runtimeConfig.mac
// (all above "mac"); deviceID from config < runtimeConfig.deviceID.
func TestOverrideOrder(t *testing.T) {
	const (
		plain   = `,"mac":"02:00:00:00:00:01","deviceID":"0000:3b:02.1"`
		args    = `,"args":{"cni":{"mac":"02:00:00:00:00:03"}}`
		runtime = `,"runtimeConfig":{"mac":"02:00:00:00:00:04","deviceID":"0000:3b:02.4"}`
		envMAC  = "IgnoreUnknown=1;MAC=02:00:00:00:00:02"
	)
	tests := []struct {
		name, fields, env, mac, dev string
	}{
		{"none", "", "", "", ""},
		{"plain keys", plain, "", "02:00:00:00:00:01", "0000:3b:02.1"},
		{"CNI_ARGS beats plain", plain, envMAC, "02:00:00:00:00:02", "0000:3b:02.1"},
		{"args beats CNI_ARGS", plain + args, envMAC, "02:00:00:00:00:03", "0000:3b:02.1"},
		{"runtimeConfig beats all", plain + args + runtime, envMAC, "02:00:00:00:00:04", "0000:3b:02.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(t, tt.fields, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.MAC != tt.mac || c.DeviceID != tt.dev {
				t.Fatalf("mac %q deviceID %q, want %q %q", c.MAC, c.DeviceID, tt.mac, tt.dev)
			}
		})
	}
}

// TestKnobsRestoreOnlyWhatDiffers: restoring sets exactly the knobs whose
// value differs from the original, and a VLAN-0 original is restored as
// 802.1Q even when the driver reported no protocol.
func TestKnobsRestoreOnlyWhatDiffers(t *testing.T) {
	rec := &recorder{cur: VFState{MAC: "02:00:00:00:00:09", Vlan: 7, QoS: 1, VlanProto: 0x88a8, Spoofchk: true}}
	orig := VFState{MAC: "02:00:00:00:00:09", Spoofchk: true}
	if err := restoreVF(rec, "pf0", 3, orig); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.calls, ";"); got != "vlan 0 0 0x8100" {
		t.Fatalf("calls %q", got)
	}
}

// recorder is an in-memory VFController.
type recorder struct {
	cur   VFState
	calls []string
}

func (r *recorder) VF(string, int) (VFState, error) { return r.cur, nil }
func (r *recorder) SetMAC(_ string, _ int, m net.HardwareAddr) error {
	r.calls = append(r.calls, "mac "+m.String())
	return nil
}

func (r *recorder) SetVlan(_ string, _, v, q int, p uint16) error {
	r.calls = append(r.calls, fmt.Sprintf("vlan %d %d %#x", v, q, p))
	return nil
}

func (r *recorder) SetSpoofchk(string, int, bool) error {
	r.calls = append(r.calls, "spoofchk")
	return nil
}
func (r *recorder) SetTrust(string, int, bool) error { r.calls = append(r.calls, "trust"); return nil }
func (r *recorder) SetLinkState(string, int, uint32) error {
	r.calls = append(r.calls, "state")
	return nil
}
func (r *recorder) SetRate(string, int, int, int) error {
	r.calls = append(r.calls, "rate")
	return nil
}
