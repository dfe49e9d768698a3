// Package image writes a container image as one tar archive, without a
// registry, a base image or a container engine.
//
// Contract of the archive Write produces:
//
//   - One image, linux/amd64, built from scratch: one uncompressed layer
//     (application/vnd.oci.image.layer.v1.tar) holding exactly Spec.Files
//     plus every parent directory of them (mode 0755), an OCI image config
//     (application/vnd.oci.image.config.v1+json) with Spec's Entrypoint,
//     Cmd, Env and WorkingDir, and an OCI image manifest.
//   - A File is a regular file with its Mode (permission bits only) and the
//     content of Source (a regular file on the host, symlinks followed) or
//     of Data (non-nil; []byte{} is an empty file), or a symlink to Link
//     (mode 0777, Mode ignored). Paths are absolute, clean and unique, and
//     no file is another's parent directory.
//   - Layer entries are sorted by path and owned by 0:0; every timestamp in
//     the layer, the config and the archive is the Unix epoch. The same
//     Spec (and the same source file contents) gives the same bytes.
//   - The archive is an OCI image layout (oci-layout, index.json,
//     blobs/sha256/<hex>). index.json lists the manifest once, annotated
//     with io.containerd.image.name = Spec.Ref and
//     org.opencontainers.image.ref.name = the tag, so
//     "ctr -n k8s.io images import" names the image Spec.Ref.
//   - The same archive carries a docker-archive manifest.json,
//     [{"Config":"blobs/sha256/<hex>","RepoTags":["<Spec.Ref>"],"Layers":["blobs/sha256/<hex>"]}],
//     pointing at the same blobs, so "docker load" (which reads only
//     manifest.json, up to Docker 24) tags the image Spec.Ref too.
//   - Spec.Ref is a fully qualified tag, registry/repository:tag, in the
//     form containerd and the kubelet use (Docker Hub written "docker.io",
//     its official images "docker.io/library/<name>"); Normalize turns what
//     users write into it.
//
// Write validates the whole Spec before it writes anything, and replaces
// the archive atomically (temporary file, fsync, rename).
package image

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one file of the image's single layer.
type File struct {
	Path   string      // absolute path inside the image, e.g. "/opt/vmcni/bin/vm-bridge"
	Mode   os.FileMode // permission bits (0755, 0644)
	Source string      // host file to copy (exactly one of Source, Data, Link)
	Data   []byte      // literal content
	Link   string      // symlink target
}

// Spec describes an image.
type Spec struct {
	Ref        string   // fully qualified reference, e.g. "docker.io/vmcni/vmcni:dev"
	Files      []File   // the layer's files, in any order; parent directories are implied
	Entrypoint []string // the config's Entrypoint
	Cmd        []string // the config's Cmd (arguments to Entrypoint)
	Env        []string // the config's Env, "KEY=value"
	WorkingDir string   // the config's WorkingDir
}

// platform is the one platform Write builds for.
var platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// epoch is every timestamp of the image: the archive is reproducible.
var epoch = time.Unix(0, 0).UTC()

// Write writes the image as one tar archive at path (atomically: temp file + rename).
// The directory of path is created (0755) if missing.
func Write(path string, s Spec) error {
	tag, err := parseRef(s.Ref)
	if err != nil {
		return err
	}
	layer, err := buildLayer(s.Files)
	if err != nil {
		return err
	}
	img, err := buildImage(s, layer)
	if err != nil {
		return fmt.Errorf("image %q: %w", s.Ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("image %q: %w", s.Ref, err)
	}
	if err := writeArchive(path, s.Ref, tag.TagStr(), img); err != nil {
		return fmt.Errorf("image %q: %w", s.Ref, err)
	}
	return nil
}

// buildImage assembles config and manifest around the layer tar.
func buildImage(s Spec, layerTar []byte) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Created:      v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: s.Entrypoint,
			Cmd:        s.Cmd,
			Env:        s.Env,
			WorkingDir: s.WorkingDir,
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   static.NewLayer(layerTar, types.OCIUncompressedLayer),
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "vmcni deploy/image"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	return img, nil
}
