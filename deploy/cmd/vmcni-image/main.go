// Command vmcni-image writes the vmcni plugin image as one archive, without
// a registry and without a Docker engine (make image runs it):
//
//	vmcni-image -bin DIR [-ref REF | -daemonset FILE] [-o FILE]
//
// DIR holds the static plugin binaries and vmcni-install. The reference
// defaults to the DaemonSet's image in deploy/daemonset.yaml, fully
// qualified. The archive loads with "ctr -n k8s.io images import" and with
// "docker load"; see deploy/image for its contract and
// deploy/internal/imagespec for the layout.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vmcni/vmcni/deploy/image"
	"github.com/vmcni/vmcni/deploy/internal/imagespec"
)

func main() {
	bin := flag.String("bin", "", "directory of the static plugin binaries and vmcni-install (required)")
	ref := flag.String("ref", "", "fully qualified image reference (default: the DaemonSet's image, qualified)")
	daemonset := flag.String("daemonset", "deploy/daemonset.yaml", "DaemonSet manifest the default reference comes from")
	out := flag.String("o", "bin/vmcni-image.tar", "archive to write")
	flag.Parse()
	if *bin == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*bin, *ref, *daemonset, *out); err != nil {
		fmt.Fprintf(os.Stderr, "vmcni-image: %v\n", err)
		os.Exit(1)
	}
}

func build(bin, ref, daemonset, out string) error {
	if ref == "" {
		var err error
		if ref, err = imagespec.DaemonSetRef(daemonset); err != nil {
			return fmt.Errorf("default reference: %w", err)
		}
	}
	if err := image.Write(out, imagespec.Spec(bin, ref)); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("vmcni-image: wrote %s (%s, %d bytes)\n", out, ref, st.Size())
	return nil
}
