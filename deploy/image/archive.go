package image

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vmcni/vmcni/deploy/internal/safefile"
)

// Annotations of the index.json entry (see the package doc).
const (
	// AnnotationImageName is containerd's full image name annotation.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI annotation for the tag.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// writeArchive lays img out as an OCI image layout in a temporary directory
// next to path, adds the docker manifest.json and packs the directory into
// the archive at path.
func writeArchive(path, ref, tag string, img v1.Image) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: img,
		Descriptor: v1.Descriptor{
			Platform:    &platform,
			Annotations: map[string]string{AnnotationImageName: ref, AnnotationRefName: tag},
		},
	})
	lp, err := layout.Write(dir, idx)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	manifest, err := dockerManifest(ref, img)
	if err != nil {
		return err
	}
	if err := lp.WriteFile("manifest.json", manifest, 0o644); err != nil {
		return fmt.Errorf("write manifest.json: %w", err)
	}
	return safefile.Write(path, 0o644, func(w io.Writer) error { return packDir(w, dir) })
}

// dockerManifest is the docker-archive manifest.json naming ref, pointing
// at the layout's blobs.
func dockerManifest(ref string, img v1.Image) ([]byte, error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	d := tarball.Descriptor{Config: blobPath(cfg), RepoTags: []string{ref}}
	for _, l := range layers {
		h, derr := l.Digest()
		if derr != nil {
			return nil, fmt.Errorf("layer digest: %w", derr)
		}
		d.Layers = append(d.Layers, blobPath(h))
	}
	m, err := json.Marshal(tarball.Manifest{d})
	if err != nil {
		return nil, fmt.Errorf("encode manifest.json: %w", err)
	}
	return m, nil
}

// blobPath is where an OCI image layout keeps the blob h.
func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// packDir writes the tree under dir as a tar stream to w: entries in
// lexical order, directories 0755, files 0644, owner 0:0, epoch timestamps.
func packDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		case d.Type().IsRegular():
			return packFile(tw, hdr, p)
		default:
			return fmt.Errorf("%q: unexpected file type %v in the image layout", p, d.Type())
		}
	})
	if err != nil {
		return fmt.Errorf("pack OCI layout: %w", err)
	}
	return tw.Close()
}

// packFile writes hdr and the content of the regular file p.
func packFile(tw *tar.Writer, hdr *tar.Header, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
	if err = tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
