package deviceplugin

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct{ resource, env, socket string }{
		{"vmcni.io/sriov_vf", "PCIDEVICE_VMCNI_IO_SRIOV_VF", "vmcni-vmcni.io_sriov_vf.sock"},
		{"intel.com/intel-sriov_netdevice", "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE", "vmcni-intel.com_intel-sriov_netdevice.sock"},
		{"example.org/Mixed.Case", "PCIDEVICE_EXAMPLE_ORG_MIXED_CASE", "vmcni-example.org_Mixed.Case.sock"},
	} {
		if got := EnvName(tc.resource); got != tc.env {
			t.Errorf("EnvName(%q) = %q, want %q", tc.resource, got, tc.env)
		}
		if got := SocketName(tc.resource); got != tc.socket {
			t.Errorf("SocketName(%q) = %q, want %q", tc.resource, got, tc.socket)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Options{ResourceName: "vmcni.io/sriov_vf", Devices: []string{"0000:3b:02.0", "0000:3b:02.1"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v): %v", ok, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no domain", func(o *Options) { o.ResourceName = "sriov_vf" }, "want domain/name"},
		{"two slashes", func(o *Options) { o.ResourceName = "vmcni.io/a/b" }, "want domain/name"},
		{"upper-case domain", func(o *Options) { o.ResourceName = "VMCNI.io/vf" }, "not a lower-case DNS subdomain"},
		{"empty domain", func(o *Options) { o.ResourceName = "/vf" }, "1 to 253"},
		{"native", func(o *Options) { o.ResourceName = "kubernetes.io/vf" }, "reserved"},
		{"native subdomain", func(o *Options) { o.ResourceName = "x.kubernetes.io/vf" }, "reserved"},
		{"bad name", func(o *Options) { o.ResourceName = "vmcni.io/-vf" }, "name \"-vf\""},
		{"empty name", func(o *Options) { o.ResourceName = "vmcni.io/" }, "name \"\""},
		{"long name", func(o *Options) { o.ResourceName = "vmcni.io/" + strings.Repeat("v", 64) }, "1 to 63"},
		{"no devices", func(o *Options) { o.Devices = nil }, "no devices"},
		{"empty device", func(o *Options) { o.Devices = []string{""} }, "empty device ID"},
		{"comma", func(o *Options) { o.Devices = []string{"a,b"} }, "contains \",\""},
		{"duplicate", func(o *Options) { o.Devices = []string{"a", "a"} }, "listed twice"},
		{"long path", func(o *Options) { o.KubeletDir = "/" + strings.Repeat("d", 100) }, "longer than 107 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(%+v) = %v, want an error with %q", o, err, tc.want)
			}
		})
	}
}
