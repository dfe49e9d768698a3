package conflist

import "testing"

func TestParse(t *testing.T) {
	list, err := Parse([]byte(`{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"bridge"},{"type":"vm-bridge"}]}`))
	if err != nil || len(list.Plugins) != 2 || list.Name != "n" {
		t.Fatalf("conflist: %+v %v", list, err)
	}
	single, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"s","type":"vm-bridge","mode":"macvtap"}`))
	if err != nil || len(single.Plugins) != 1 || single.Name != "s" || single.CNIVersion != "1.0.0" ||
		single.Plugins[0].Network.Type != "vm-bridge" {
		t.Fatalf("single: %+v %v", single, err)
	}
	for _, bad := range []string{`{`, `{"type":"x"}`, `{"name":"n","plugins":[]}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
