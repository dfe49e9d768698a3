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
// directory. A file's content is data, or the host file src, read when
// the entry is written.
type entry struct {
	hdr  tar.Header
	data []byte
	src  string
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
		entries[f.Path] = f.entry()
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
		if err := entries[p].write(tw); err != nil {
			return nil, fmt.Errorf("file %q: %w", p, err)
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

// entry returns f's tar entry.
func (f File) entry() *entry {
	hdr := tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: int64(f.Mode)}
	switch {
	case f.Link != "":
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		return &entry{hdr: hdr}
	case f.Source != "":
		return &entry{hdr: hdr, src: f.Source}
	default:
		hdr.Size = int64(len(f.Data))
		return &entry{hdr: hdr, data: f.Data}
	}
}

// write writes e to tw with the fixed timestamp, copying its source file
// (which must be a regular file; a symlink to one is followed).
func (e *entry) write(tw *tar.Writer) error {
	e.hdr.ModTime = epoch
	if e.src == "" {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := safefile.OpenRegular(e.src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	e.hdr.Size = st.Size()
	if err := tw.WriteHeader(&e.hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, e.hdr.Size); err != nil {
		return fmt.Errorf("source %q: %w", e.src, err)
	}
	return nil
}
