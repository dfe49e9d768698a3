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

// Open returns a logger for c and a function closing its file. If the file
// cannot be opened the logger discards (a broken log must not fail ADD).
func Open(c Config, attrs ...any) (*slog.Logger, func()) {
	level, err := parseLevel(c.LogLevel)
	if c.LogFile == "" || err != nil {
		return Discard(), func() {}
	}
	f, err := os.OpenFile(c.LogFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return Discard(), func() {}
	}
	h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(attrs...), func() { _ = f.Close() }
}

// Discard returns a logger that drops everything.
func Discard() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
