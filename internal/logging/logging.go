// Package logging gives plugins a *slog.Logger that writes to the file named
// in their config (logFile, logLevel). Plugins must never log to stdout: it
// carries the CNI protocol. Without a logFile, logs are discarded.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
)

// Config is embedded in every plugin's network config.
type Config struct {
	// LogFile (optional) is a file to append JSON log lines to. Defaults to
	// no logging.
	LogFile string `json:"logFile,omitempty"`
	// LogLevel (optional) is debug, info, warn or error. Defaults to info.
	LogLevel string `json:"logLevel,omitempty"`
}

// Validate checks the level name.
func (c Config) Validate() error {
	_, err := parseLevel(c.LogLevel)
	return err
}

func parseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("logLevel %q is not one of debug, info, warn, error", name)
}

// MaxSize is the size past which Open starts a new log file, keeping the
// previous one as <logFile>.1: plugins run for every pod, and nothing else
// trims their log.
const MaxSize = 16 << 20

// Open returns a logger for c and a function closing its file. If the file
// cannot be opened the logger discards (a broken log must not fail ADD).
// The file is opened without following a symlink and must be a regular
// file: a log path in a shared directory must not let another user point
// the plugin's writes elsewhere.
func Open(c Config, attrs ...any) (*slog.Logger, func()) {
	level, err := parseLevel(c.LogLevel)
	if c.LogFile == "" || err != nil {
		return Discard(), func() {}
	}
	f, err := openLog(c.LogFile)
	if err != nil {
		return Discard(), func() {}
	}
	h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(attrs...), func() { _ = f.Close() }
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("log file %q is not a regular file", path)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.Size() < MaxSize {
		return f, nil
	}
	// Rotate once; a concurrent plugin may have rotated first, which is
	// fine: both then append to the new file.
	_ = f.Close()
	_ = os.Rename(path, path+".1")
	return os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
}

// Discard returns a logger that drops everything.
func Discard() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
