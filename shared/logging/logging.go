// Package logging builds the structured logger every service uses.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// New returns a JSON (format "json") or text logger at the given level
// ("debug", "info", "warn", "error"). Durations are written as Go duration
// strings ("1.5s", "150ms"), not as nanoseconds.
func New(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: ReplaceAttr}
	if strings.ToLower(format) == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ReplaceAttr is the slog.HandlerOptions.ReplaceAttr of New's handlers: a
// time.Duration becomes its String form, so a JSON log reads "timeout":"5s"
// rather than "timeout":5000000000. Tests that build their own handler can
// use it too.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// Discard is a logger that drops everything, for tests that do not read logs.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
