// Package imagespec says what the vmcni plugin image holds and which name
// it gets.
//
// The image has one layer, no base image and no shell:
//
//	/opt/vmcni/bin/<plugin>   each of Plugins, mode 0755 (what vmcni-install installs)
//	/vmcni-install            the entrypoint, mode 0755
//
// Its name defaults to the image of the DaemonSet in deploy/daemonset.yaml,
// in fully qualified form (vmcni/vmcni:dev is docker.io/vmcni/vmcni:dev),
// the name containerd and the kubelet look the image up by.
package imagespec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/vmcni/vmcni/deploy/image"
	"github.com/vmcni/vmcni/deploy/internal/install"
)

// Plugins are the plugin binaries the image carries (the mains under plugins/).
var Plugins = []string{"vm-bridge", "vm-sriov", "vm-vhostuser", "vm-vpp"}

// Installer is the entrypoint binary's name, at the image's root.
const Installer = "vmcni-install"

// Spec returns the image named ref built from binDir, which holds every
// binary of Plugins and Installer (static: the image has no libc).
func Spec(binDir, ref string) image.Spec {
	files := make([]image.File, 0, len(Plugins)+1)
	for _, p := range Plugins {
		files = append(files, image.File{Path: path.Join(install.DefaultSrcBin, p), Mode: 0o755, Source: filepath.Join(binDir, p)})
	}
	files = append(files, image.File{Path: "/" + Installer, Mode: 0o755, Source: filepath.Join(binDir, Installer)})
	return image.Spec{
		Ref:        ref,
		Files:      files,
		Entrypoint: []string{"/" + Installer},
		WorkingDir: "/",
	}
}

// DaemonSetRef returns the image the DaemonSet in the YAML file at p runs,
// fully qualified. Every container and init container of the DaemonSet
// must run that same image.
func DaemonSetRef(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	var ref string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						InitContainers []struct{ Image string } `yaml:"initContainers"`
						Containers     []struct{ Image string } `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("%q document %d: %w", p, i, err)
		}
		if doc.Kind != "DaemonSet" {
			continue
		}
		pod := doc.Spec.Template.Spec
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			switch {
			case c.Image == "":
				return "", fmt.Errorf("%q: a DaemonSet container has no image", p)
			case ref != "" && c.Image != ref:
				return "", fmt.Errorf("%q: the DaemonSet runs two images, %q and %q; want one", p, ref, c.Image)
			}
			ref = c.Image
		}
	}
	if ref == "" {
		return "", fmt.Errorf("%q: no DaemonSet with a container image", p)
	}
	return image.Normalize(ref)
}
