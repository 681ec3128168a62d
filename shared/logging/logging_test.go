package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// logValuer resolves to a duration, as a type implementing slog.LogValuer might.
type logValuer struct{}

func (logValuer) LogValue() slog.Value { return slog.DurationValue(2 * time.Minute) }

func TestDurationsAreDurationStrings(t *testing.T) {
	log := func(l *slog.Logger) {
		l.Info("done",
			"took", 1500*time.Millisecond,
			slog.Duration("timeout", 150*time.Millisecond),
			slog.Group("retry", "after", time.Second),
			"lease", logValuer{},
			"count", 3,
		)
	}
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		log(New(&buf, "json", "info"))
		var got map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		for k, want := range map[string]any{"took": "1.5s", "timeout": "150ms", "lease": "2m0s", "count": 3.0} {
			if got[k] != want {
				t.Errorf("%s = %#v, want %#v (%s)", k, got[k], want, buf.Bytes())
			}
		}
		if g, _ := got["retry"].(map[string]any); g["after"] != "1s" {
			t.Errorf("retry.after = %#v, want \"1s\" (%s)", got["retry"], buf.Bytes())
		}
	})
	t.Run("text", func(t *testing.T) {
		var buf bytes.Buffer
		log(New(&buf, "text", "info"))
		for _, want := range []string{"took=1.5s", "timeout=150ms", "retry.after=1s", "lease=2m0s", "count=3"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("text log lacks %s: %s", want, buf.String())
			}
		}
	})
}

func TestLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "json", "warn")
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("level warn: %s", buf.String())
	}
}
