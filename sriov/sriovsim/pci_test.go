package sriovsim

import (
	"slices"
	"testing"
)

func TestSplitValues(t *testing.T) {
	a, b, c := "0000:3b:02.1", "0000:3b:02.2", "0000:3B:02.7"
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\n", nil},
		{a, []string{a}},
		{a + "\n", []string{a}},
		{a + b + c, []string{a, b, c}},
		{a + "\n" + b + c + "\n", []string{a, b, c}},
		{" \t" + a + "\r\n\x00" + b, []string{a, b}},
		{"bogus" + a + "x\ny", []string{"bogus", a, "x", "y"}},
		{"0000:3b:02.8" + a, []string{"0000:3b:02.8", a}},
		{"0000:3b:02", []string{"0000:3b:02"}},
	} {
		if got := splitValues(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitValues(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
