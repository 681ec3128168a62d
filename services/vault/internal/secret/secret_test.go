package secret

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	s := Value("tok-plaintext")
	log.Info("x", "secret", s, "group", slog.GroupValue(slog.Any("inner", s)))
	out := buf.String() + fmt.Sprintf("%v %s %#v %+v %q", s, s, s, s, s)
	if strings.Contains(out, "tok-plaintext") {
		t.Fatalf("secret leaked: %s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("out = %s", out)
	}
	if s.Reveal() != "tok-plaintext" || s.IsZero() || !Value("").IsZero() {
		t.Fatal("Reveal / IsZero")
	}
}
