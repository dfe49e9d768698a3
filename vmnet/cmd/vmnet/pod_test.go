package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMarkerWriter: without --console only guest markers pass, cut to start
// at the marker; with it every line passes as is.
func TestMarkerWriter(t *testing.T) {
	console := []string{
		"[    0.000000] Linux version 6.1.0",
		"\x1b[0mVMCNI-GUEST-READY ip=10.0.0.5/24 dev=eth0",
		"qemu-system-x86_64: terminating on signal 15",
		"VMCNI-PROBE-OK 10.0.0.1",
		"",
	}
	for _, all := range []bool{false, true} {
		var b strings.Builder
		w := &markerWriter{w: &b, all: all}
		for _, line := range console {
			fmt.Fprintln(w, line) // as the launcher echoes: one line a write
		}
		want := "VMCNI-GUEST-READY ip=10.0.0.5/24 dev=eth0\nVMCNI-PROBE-OK 10.0.0.1\n"
		if all {
			want = strings.Join(console, "\n") + "\n"
		}
		if b.String() != want {
			t.Errorf("all=%v: wrote %q, want %q", all, b.String(), want)
		}
	}
	var b strings.Builder
	if n, err := (&markerWriter{w: &b}).Write([]byte("x VMCNI-A 1\nnoise\nVMCNI-B 2")); err != nil || n != 27 || b.String() != "VMCNI-A 1\nVMCNI-B 2\n" {
		t.Errorf("several lines in one write: %d %v %q", n, err, b.String())
	}
}

// TestPodSources: what is missing while the downward API file lacks the
// annotation or lists no device, and the plan once it lists one.
func TestPodSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "network-status")
	src := podSources{networkStatus: file}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vhost := `{"name":"nfv","interface":"sock","ips":["10.0.0.5"],"mac":"02:00:00:00:00:05","device-info":{"type":"vhost-user","vhost-user":{"mode":"server","path":"/run/s/sock"}}}`
	tests := []struct {
		name, content string // content "-" means no file
		missing, err  string
		nics          int
	}{
		{"no file yet", "-", file + " holds no k8s.v1.cni.cncf.io/network-status annotation", "", 0},
		{"empty file", "", "holds no", "", 0},
		{"other annotations", `k8s.v1.cni.cncf.io/networks="vm-vhostuser"`, "holds no", "", 0},
		{"default network only", `[{"name":"k8s-pod-network","interface":"eth0","default":true}]`,
			"no NIC found: no vhost-user device-info in " + file, "", 0},
		{"vhost-user", `[{"name":"k8s-pod-network","interface":"eth0","default":true},` + vhost + `]`, "", "", 1},
		{"all annotations form", fmt.Sprintf("k8s.v1.cni.cncf.io/network-status=%q", "["+vhost+"]"), "", "", 1},
		{"bad json", `[{]`, "", "decode", 0},
		{"bad entry", `[{"name":"x","device-info":{"type":"vhost-user","vhost-user":{"mode":"server","path":"s"}}}]`, "", "not absolute", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(file)
			if tt.content != "-" {
				write(tt.content)
			}
			p, missing, err := src.plan()
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case !strings.Contains(missing, tt.missing) || (tt.missing == "") != (missing == ""):
				t.Fatalf("missing %q, want %q", missing, tt.missing)
			case len(p.NICs) != tt.nics:
				t.Fatalf("%d NICs, want %d", len(p.NICs), tt.nics)
			}
		})
	}

	_ = os.Remove(file)
	start := time.Now()
	_, err := src.wait(context.Background(), 1500*time.Millisecond)
	if err == nil || !strings.HasSuffix(err.Error(), "(waited 1.5s)") || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("wait without the annotation: %v after %s", err, time.Since(start))
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		write("[" + vhost + "]")
	}()
	p, err := src.wait(context.Background(), 10*time.Second)
	if err != nil || len(p.NICs) != 1 {
		t.Fatalf("wait for the annotation to come: %v %v", p, err)
	}
	if _, err := (podSources{}).wait(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "neither --netns nor --network-status") {
		t.Fatalf("no source: %v", err)
	}
}
