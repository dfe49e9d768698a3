package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/vmcni/vmcni/deploy/internal/safefile"
)

// entry is one tar entry of the layer: a file, a symlink or a parent
// directory.
type entry struct {
	hdr  tar.Header
	data []byte
}

// buildLayer validates files, reads their sources and returns the layer
// tar: every file and every parent directory, sorted by path.
func buildLayer(files []File) ([]byte, error) {
	entries := map[string]*entry{}
	for _, f := range files {
		if err := f.validate(); err != nil {
			return nil, err
		}
		if _, dup := entries[f.Path]; dup {
			return nil, fmt.Errorf("file %q: listed twice", f.Path)
		}
		entries[f.Path] = nil // content read below, after every check
	}
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			if _, isFile := entries[d]; isFile {
				return nil, fmt.Errorf("file %q: parent %q is also listed as a file", f.Path, d)
			}
			dirs[d] = true
		}
	}
	for _, f := range files {
		e, err := f.entry()
		if err != nil {
			return nil, err
		}
		entries[f.Path] = e
	}
	for d := range dirs {
		entries[d] = &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := entries[p]
		e.hdr.ModTime = epoch
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", p, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// validate checks f without touching the host.
func (f File) validate() error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
		return fmt.Errorf("file %q: path must be absolute and clean, e.g. %q", f.Path, "/opt/vmcni/bin/vm-bridge")
	}
	if f.Mode&^os.ModePerm != 0 {
		return fmt.Errorf("file %q: mode %v: only permission bits (e.g. 0755, 0644) are allowed", f.Path, f.Mode)
	}
	set := 0
	for _, ok := range []bool{f.Source != "", f.Data != nil, f.Link != ""} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("file %q: exactly one of Source, Data and Link must be set, got %d", f.Path, set)
	}
	return nil
}

// entry returns f's tar entry, reading Source from the host.
func (f File) entry() (*entry, error) {
	name := strings.TrimPrefix(f.Path, "/")
	switch {
	case f.Link != "":
		return &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Link, Mode: 0o777}}, nil
	case f.Source != "":
		data, err := readRegular(f.Source)
		if err != nil {
			return nil, fmt.Errorf("file %q: source: %w", f.Path, err)
		}
		return &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(f.Mode), Size: int64(len(data))}, data: data}, nil
	default:
		return &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(f.Mode), Size: int64(len(f.Data))}, data: f.Data}, nil
	}
}

// readRegular reads the regular file at p (symlinks to one are followed).
func readRegular(p string) ([]byte, error) {
	fh, err := safefile.OpenRegular(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(fh)
}
