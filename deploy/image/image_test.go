package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const testRef = "docker.io/vmcni/vmcni-test:dev"

// testSpec is a small image: a copied binary, a literal file and a symlink.
func testSpec(t *testing.T) Spec {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!binary\x00payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Ref: testRef,
		Files: []File{
			{Path: "/opt/vmcni/bin/tool", Mode: 0o755, Source: src},
			{Path: "/etc/vmcni/readme", Mode: 0o644, Data: []byte("hello\n")},
			{Path: "/usr/bin/tool", Link: "/opt/vmcni/bin/tool"},
			{Path: "/entry", Mode: 0o755, Data: []byte("e")},
		},
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"run"},
		Env:        []string{"A=b"},
		WorkingDir: "/opt/vmcni",
	}
}

// layerEntry is what the tests compare of one layer entry.
type layerEntry struct {
	Name string
	Type byte
	Mode int64
	Link string
	Data string
}

var wantLayer = []layerEntry{
	{Name: "entry", Type: tar.TypeReg, Mode: 0o755, Data: "e"},
	{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "etc/vmcni/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "etc/vmcni/readme", Type: tar.TypeReg, Mode: 0o644, Data: "hello\n"},
	{Name: "opt/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "opt/vmcni/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "opt/vmcni/bin/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "opt/vmcni/bin/tool", Type: tar.TypeReg, Mode: 0o755, Data: "#!binary\x00payload"},
	{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "usr/bin/tool", Type: tar.TypeSymlink, Mode: 0o777, Link: "/opt/vmcni/bin/tool"},
}

// readTar returns the entries of a tar stream, checking every timestamp
// and owner.
func readTar(t *testing.T, r io.Reader) []layerEntry {
	t.Helper()
	var out []layerEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(epoch) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v owner %d:%d, want epoch 0:0", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerEntry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname, string(data)})
	}
}

// untar extracts the regular files and directories of archive into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, e := range readTar(t, f) {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		switch e.Type {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			err = os.WriteFile(p, []byte(e.Data), 0o644)
		default:
			t.Fatalf("archive entry %q: unexpected type %q", e.Name, e.Type)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeTestImage(t *testing.T, s Spec) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out", "image.tar")
	if err := Write(out, s); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return out
}

func TestWriteReadBackAsOCILayout(t *testing.T) {
	s := testSpec(t)
	archive := writeTestImage(t, s)
	if names := dirNames(t, filepath.Dir(archive)); !reflect.DeepEqual(names, []string{"image.tar"}) {
		t.Errorf("output directory holds %v, want only image.tar (no temporary files)", names)
	}
	dir := t.TempDir()
	untar(t, archive, dir)

	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("ImageIndexFromPath: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	wantAnn := map[string]string{AnnotationImageName: testRef, AnnotationRefName: "dev"}
	if !reflect.DeepEqual(desc.Annotations, wantAnn) {
		t.Errorf("annotations = %v, want %v", desc.Annotations, wantAnn)
	}
	if desc.MediaType != types.OCIManifestSchema1 || desc.Platform == nil || desc.Platform.String() != "linux/amd64" {
		t.Errorf("descriptor media type %q platform %v, want an OCI manifest for linux/amd64", desc.MediaType, desc.Platform)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, s, img)
	layers, _ := img.Layers()
	mt, _ := layers[0].MediaType()
	digest, _ := layers[0].Digest()
	diffID, _ := layers[0].DiffID()
	if mt != types.OCIUncompressedLayer || digest != diffID {
		t.Errorf("layer %s digest %v diff ID %v: want one uncompressed layer", mt, digest, diffID)
	}

	// The docker-archive view of the same file.
	tag, err := name.NewTag(testRef, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	dimg, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath: %v", err)
	}
	checkImage(t, s, dimg)
	ociCfg, _ := img.ConfigName()
	dockerCfg, _ := dimg.ConfigName()
	ociLayers, _ := img.Layers()
	dockerLayers, _ := dimg.Layers()
	ociDiff, _ := ociLayers[0].DiffID()
	dockerDiff, _ := dockerLayers[0].DiffID()
	if ociCfg != dockerCfg || ociDiff != dockerDiff {
		t.Errorf("docker view config %v layer %v, OCI view config %v layer %v", dockerCfg, dockerDiff, ociCfg, ociDiff)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"Config":"blobs/sha256/` + ociCfg.Hex + `","RepoTags":["` + testRef + `"],"Layers":["blobs/sha256/` + ociDiff.Hex + `"]}]`
	if string(manifest) != want {
		t.Errorf("manifest.json =\n%s\nwant\n%s", manifest, want)
	}
}

// checkImage compares img's config and single layer with s.
func checkImage(t *testing.T, s Spec, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(epoch) {
		t.Errorf("config os/arch/created = %s/%s/%v, want linux/amd64/epoch", cf.OS, cf.Architecture, cf.Created)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, s.Entrypoint) || !reflect.DeepEqual(c.Cmd, s.Cmd) ||
		!reflect.DeepEqual(c.Env, s.Env) || c.WorkingDir != s.WorkingDir {
		t.Errorf("config = %+v, want the spec's entrypoint, cmd, env and working dir", c)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	diffID, _ := layers[0].DiffID()
	if len(cf.RootFS.DiffIDs) != 1 || cf.RootFS.DiffIDs[0] != diffID {
		t.Errorf("config diff IDs %v, want [%v]", cf.RootFS.DiffIDs, diffID)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := readTar(t, rc); !reflect.DeepEqual(got, wantLayer) {
		t.Errorf("layer entries:\n%+v\nwant\n%+v", got, wantLayer)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteIsReproducible(t *testing.T) {
	s := testSpec(t)
	a, err := os.ReadFile(writeTestImage(t, s))
	if err != nil {
		t.Fatal(err)
	}
	// Same content, another mtime and mode on the host, files listed in
	// another order: the same bytes.
	src := s.Files[0].Source
	if err := os.Chtimes(src, epoch, epoch); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Files[0], s.Files[3] = s.Files[3], s.Files[0]
	b, err := os.ReadFile(writeTestImage(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two archives of the same spec differ (%d and %d bytes)", len(a), len(b))
	}
}

func TestWriteReplacesExistingArchive(t *testing.T) {
	s := testSpec(t)
	out := writeTestImage(t, s)
	first, _ := os.ReadFile(out)
	s.Cmd = []string{"other"}
	if err := Write(out, s); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(out)
	if bytes.Equal(first, second) {
		t.Fatal("archive not replaced")
	}
	// A failing Write leaves the archive as it was and no temporary file.
	s.Files = append(s.Files, File{Path: "relative"})
	if err := Write(out, s); err == nil {
		t.Fatal("Write with a bad file succeeded")
	}
	if third, _ := os.ReadFile(out); !bytes.Equal(third, second) {
		t.Error("a failed Write changed the archive")
	}
	if names := dirNames(t, filepath.Dir(out)); !reflect.DeepEqual(names, []string{"image.tar"}) {
		t.Errorf("output directory holds %v, want only image.tar", names)
	}
}

func TestWriteRejectsBadRefs(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"", "must be fully qualified"},
		{"vmcni/vmcni:dev", "must be fully qualified"},
		{"docker.io/vmcni/vmcni", "must be fully qualified"},
		{"docker.io/busybox:1", "missing 'library'"},
		{"index.docker.io/vmcni/vmcni:dev", `write "docker.io/vmcni/vmcni:dev"`},
		{"docker.io/vmcni/vmcni@sha256:" + strings.Repeat("a", 64), "a tag is required"},
		{"docker.io/VMCNI/vmcni:dev", "must be fully qualified"},
		{"docker.io/vmcni/vmcni:bad tag", "must be fully qualified"},
	} {
		s := testSpec(t)
		s.Ref = tc.ref
		out := filepath.Join(t.TempDir(), "image.tar")
		err := Write(out, s)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"`+tc.ref+`"`) {
			t.Errorf("ref %q: err = %v, want one quoting the ref and saying %q", tc.ref, err, tc.want)
		}
		if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("ref %q: archive written anyway (%v)", tc.ref, serr)
		}
	}
}

func TestWriteRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	ok := File{Path: "/ok", Mode: 0o644, Data: []byte("ok")}
	for _, tc := range []struct {
		name  string
		files []File
		want  string
	}{
		{"two sources", []File{{Path: "/a", Mode: 0o644, Source: src, Data: []byte("x")}}, `file "/a": exactly one of Source, Data and Link must be set, got 2`},
		{"none", []File{{Path: "/a", Mode: 0o644}}, `file "/a": exactly one of Source, Data and Link must be set, got 0`},
		{"relative", []File{{Path: "opt/a", Mode: 0o644, Data: []byte{}}}, `file "opt/a": path must be absolute and clean`},
		{"unclean", []File{{Path: "/opt/../a", Mode: 0o644, Data: []byte{}}}, `file "/opt/../a": path must be absolute and clean`},
		{"root", []File{{Path: "/", Mode: 0o755, Data: []byte{}}}, `file "/": path must be absolute and clean`},
		{"mode", []File{{Path: "/a", Mode: os.ModeSetuid | 0o755, Data: []byte{}}}, `file "/a": mode urwxr-xr-x: only permission bits`},
		{"missing source", []File{ok, {Path: "/a", Mode: 0o755, Source: filepath.Join(dir, "nope")}}, `file "/a": source: stat ` + filepath.Join(dir, "nope") + `: no such file or directory`},
		{"directory source", []File{{Path: "/a", Mode: 0o755, Source: dir}}, `file "/a": source: "` + dir + `" is not a regular file`},
		{"fifo source", []File{{Path: "/a", Mode: 0o755, Source: fifo}}, `file "/a": source: "` + fifo + `" is not a regular file`},
		{"duplicate", []File{ok, ok}, `file "/ok": listed twice`},
		{"file as parent", []File{ok, {Path: "/ok/b", Mode: 0o644, Data: []byte{}}}, `file "/ok/b": parent "/ok" is also listed as a file`},
	} {
		s := testSpec(t)
		s.Files = tc.files
		err := Write(filepath.Join(t.TempDir(), "image.tar"), s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"vmcni/vmcni:dev":                 "docker.io/vmcni/vmcni:dev",
		"vmcni/vmcni":                     "docker.io/vmcni/vmcni:latest",
		"busybox":                         "docker.io/library/busybox:latest",
		"docker.io/vmcni/vmcni:dev":       "docker.io/vmcni/vmcni:dev",
		"index.docker.io/vmcni/vmcni:dev": "docker.io/vmcni/vmcni:dev",
		"quay.io/vmcni/vmcni:v1":          "quay.io/vmcni/vmcni:v1",
		"localhost:5000/vmcni:dev":        "localhost:5000/vmcni:dev",
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
		if _, err := parseRef(want); err != nil {
			t.Errorf("normal form %q refused: %v", want, err)
		}
	}
	for _, bad := range []string{"", "vmcni/vmcni@sha256:" + strings.Repeat("a", 64), "UPPER/case:x"} {
		if got, err := Normalize(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Normalize(%q) = %q, %v; want an error quoting it", bad, got, err)
		}
	}
}
