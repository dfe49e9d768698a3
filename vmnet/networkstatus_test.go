package vmnet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// downwardAnnotations renders annotations as the kubelet writes a downward
// API item with fieldRef metadata.annotations: sorted `key="value"` lines,
// values quoted with %q.
func downwardAnnotations(kv ...string) []byte {
	var lines []string
	for i := 0; i+1 < len(kv); i += 2 {
		lines = append(lines, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	return []byte(strings.Join(lines, "\n"))
}

// TestParseNetworkStatusForms reads the annotation in the raw-value form and
// in the all-annotations form of a downward API volume.
func TestParseNetworkStatusForms(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "networkstatus", "ovs-dpdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		entries int
		wantErr string
	}{
		{"raw value", raw, 4, ""},
		{"raw value with blank lines", []byte("\n  " + string(raw) + "\n\n"), 4, ""},
		{"all annotations", downwardAnnotations(
			"cni.projectcalico.org/podIP", "10.244.0.17/32",
			"k8s.v1.cni.cncf.io/network-status", string(raw),
			"k8s.v1.cni.cncf.io/networks", `[{"name":"vm-vhostuser"}]`), 4, ""},
		{"literal kubelet line", []byte(`kubernetes.io/config.seen="2026-12-02T18:31:00Z"` + "\n" +
			`k8s.v1.cni.cncf.io/network-status="[{\n    \"name\": \"k8s-pod-network\",\n    \"interface\": \"eth0\",\n    \"default\": true\n}]"`), 1, ""},
		{"empty file", nil, 0, ""},
		{"only whitespace", []byte(" \n\t\n"), 0, ""},
		{"annotations without network-status", downwardAnnotations("k8s.v1.cni.cncf.io/networks", "vm-vhostuser"), 0, ""},
		{"empty list", []byte("[]"), 0, ""},
		{"bad json", []byte(`[{"name": }]`), 0, "decode k8s.v1.cni.cncf.io/network-status"},
		{"unquoted annotation value", []byte(`k8s.v1.cni.cncf.io/network-status=[{"name":"x"}]`), 0, "not a quoted string"},
		{"quoted value that is no list", downwardAnnotations(NetworkStatusAnnotation, `{"name":"x"}`), 0, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetworkStatus(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.entries {
				t.Fatalf("%d entries, want %d: %+v", len(got), tt.entries, got)
			}
		})
	}
}

// TestPlanFromNetworkStatus renders the plan of each annotation in
// testdata/networkstatus/<name>.json into <name>.golden: the plan, its
// summary, the QEMU arguments on microvm and pc, and the guest cmdline.
func TestPlanFromNetworkStatus(t *testing.T) {
	for _, name := range []string{"ovs-dpdk", "two-vhost-user", "no-vhost-user"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "networkstatus", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			statuses, err := ParseNetworkStatus(data)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PlanFromNetworkStatus(statuses, NetworkStatusOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			summary, _ := json.Marshal(p.Summary())
			fmt.Fprintf(&b, "# plan\n%s\n# summary\n%s\n\n", p, summary)
			for _, machine := range []string{"microvm", "pc"} {
				args, err := QEMUArgs(p, QEMUOptions{Machine: machine, MemoryMiB: 256})
				if err != nil {
					args = []string{"error: " + err.Error()}
				}
				fmt.Fprintf(&b, "# qemu %s\n%s\n\n", machine, strings.Join(args, "\n"))
			}
			fmt.Fprintf(&b, "# guest cmdline\n%s\n", GuestCmdline(p))
			golden(t, "networkstatus/"+name, []byte(b.String()))
		})
	}
}

// TestPlanFromNetworkStatusErrors: a vhost-user entry the VMM cannot use
// fails the plan and names the entry.
func TestPlanFromNetworkStatusErrors(t *testing.T) {
	entry := func(mode, path, mac string, ips ...string) NetworkStatus {
		var st NetworkStatus
		doc := fmt.Sprintf(`{"name":"nfv","interface":"sock","mac":%q,"device-info":{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":%q,"path":%q}}}`, mac, mode, path)
		if err := json.Unmarshal([]byte(doc), &st); err != nil {
			t.Fatal(err)
		}
		st.IPs = ips
		return st
	}
	noSection := entry("server", "/run/s", "02:00:00:00:00:01")
	noSection.DeviceInfo.VhostUser = nil
	tests := []struct {
		name     string
		statuses []NetworkStatus
		want     string
	}{
		{"relative path", []NetworkStatus{entry("server", "run/s", "02:00:00:00:00:01")}, `entry 0 ("nfv", interface "sock"): vhost-user path "run/s" is not absolute`},
		{"bad mode", []NetworkStatus{entry("master", "/run/s", "02:00:00:00:00:01")}, `mode "master" is not server or client`},
		{"no mac", []NetworkStatus{entry("server", "/run/s", "")}, "no mac"},
		{"bad mac", []NetworkStatus{entry("server", "/run/s", "02:00")}, "mac: "},
		{"bad ip", []NetworkStatus{entry("server", "/run/s", "02:00:00:00:00:01", "10.0.0.300")}, `ip "10.0.0.300" does not parse`},
		{"bad cidr", []NetworkStatus{entry("server", "/run/s", "02:00:00:00:00:01", "10.0.0.3/33")}, `ip "10.0.0.3/33"`},
		{"no section", []NetworkStatus{noSection}, "without its section"},
		{"same mac twice", []NetworkStatus{entry("server", "/run/a", "02:00:00:00:00:01"), entry("server", "/run/b", "02:00:00:00:00:01")}, "already used by NIC 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanFromNetworkStatus(tt.statuses, NetworkStatusOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestMergePlans: NICs keep their sources' order; a MAC given twice fails.
func TestMergePlans(t *testing.T) {
	tap := mustPlan(t, tapHint("eth0", "tap_eth0", 1))
	vhost := mustPlan(t, vhostUserHint("server", 1))
	p, err := MergePlans(nil, tap, &Plan{}, vhost)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.NICs) != 2 || p.NICs[0].Device != "tap_eth0" || p.NICs[1].Kind != vhost.NICs[0].Kind {
		t.Fatalf("merged plan:\n%s", p)
	}
	if _, err := MergePlans(tap, tap); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("merging a plan with itself: %v", err)
	}
	if p, err := MergePlans(); err != nil || len(p.NICs) != 0 {
		t.Fatalf("merging nothing: %v %v", p, err)
	}
}
