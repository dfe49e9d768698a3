package logging

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOpenRefusesSymlinksAndFIFOs: the logger discards instead of
// writing through a symlink or blocking on a FIFO.
func TestOpenRefusesSymlinksAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	log, done := Open(Config{LogFile: link})
	log.Info("hello")
	done()
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatal("wrote through the symlink")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	log, done = Open(Config{LogFile: fifo})
	log.Info("hello") // must not block
	done()
}

// TestOpenRotates: past MaxSize the log starts again, the old one kept.
func TestOpenRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte(strings.Repeat("x", MaxSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	log, done := Open(Config{LogFile: path})
	log.Info("fresh")
	done()
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "fresh") || len(data) > 1000 {
		t.Fatalf("new log: %d bytes, %v", len(data), err)
	}
	if fi, err := os.Stat(path + ".1"); err != nil || fi.Size() != MaxSize {
		t.Fatalf("old log: %v", err)
	}
}
