package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestPlanGolden runs `vmnet plan` on a hint file of every device kind, on
// microvm and pc, and compares the output with testdata/<kind>.<machine>.golden.
func TestPlanGolden(t *testing.T) {
	for _, kind := range []string{"tap", "macvtap", "vhostuser", "vfio", "memif"} {
		for _, machine := range []string{"microvm", "pc"} {
			t.Run(kind+"/"+machine, func(t *testing.T) {
				var out bytes.Buffer
				hintFile := filepath.Join("testdata", "hints", kind+".json")
				if err := planCmd([]string{"--hint", hintFile, "--machine", machine}, &out); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", kind+"."+machine+".golden")
				if *update {
					if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(out.Bytes(), want) {
					t.Fatalf("vmnet plan output differs from %s:\n%s", golden, out.String())
				}
			})
		}
	}
}

// TestPlanNeedsInput: no hint and no result is a usage error.
func TestPlanNeedsInput(t *testing.T) {
	if err := planCmd(nil, &bytes.Buffer{}); err == nil {
		t.Fatal("plan without input succeeded")
	}
}
