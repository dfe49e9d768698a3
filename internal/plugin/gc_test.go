package plugin

import "testing"

// TestValidAttachmentsKeys: cni.dev/valid-attachments, else the older
// cni.dev/attachments key.
func TestValidAttachmentsKeys(t *testing.T) {
	for _, tc := range []struct {
		stdin string
		want  int
	}{
		{`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`, 1},
		{`{"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]}`, 2},
		{`{"cni.dev/valid-attachments":[],"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}`, 0},
		{`{}`, 0},
	} {
		valid, err := ValidAttachments([]byte(tc.stdin))
		if err != nil || len(valid) != tc.want {
			t.Fatalf("%s: %d valid, %v", tc.stdin, len(valid), err)
		}
	}
	if _, err := ValidAttachments([]byte(`{`)); err == nil {
		t.Fatal("bad JSON accepted")
	}
}
