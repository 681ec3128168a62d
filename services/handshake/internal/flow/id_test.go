package flow

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestIDShape(t *testing.T) {
	id := NewID()
	if !ValidID(id) {
		t.Fatalf("ValidID(%q) = false for a new id", id)
	}
	for _, bad := range []string{"", "short", NewID() + "A", "!" + NewID()[1:]} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
	if ValidRef("zz" + Ref("x")[2:]) {
		t.Error("ValidRef accepted non-hex")
	}
}

// TestValidIDCanonicalOnly: 43 characters hold 258 bits for 256, so the last
// character has two unused bits. Text that sets them decodes, leniently, to
// the same 32 bytes as the real id; ValidID must refuse it.
func TestValidIDCanonicalOnly(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	id := NewID()
	last := strings.IndexByte(alphabet, id[len(id)-1])
	tests := []struct {
		name string
		id   string
	}{
		{"lowest unused bit set", id[:len(id)-1] + string(alphabet[last^1])},
		{"both unused bits set", id[:len(id)-1] + string(alphabet[last^3])},
		{"line break in place of a character", id[:20] + "\n" + id[21:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ValidID(tt.id) {
				t.Fatalf("ValidID(%q) = true", tt.id)
			}
		})
	}
	// The premise: the lenient decoder cannot tell the first two from the id.
	for _, tt := range tests[:2] {
		a, _ := base64.RawURLEncoding.DecodeString(id)
		b, err := base64.RawURLEncoding.DecodeString(tt.id)
		if err != nil || string(a) != string(b) {
			t.Fatalf("%s: %q does not decode to the id's bytes (%v)", tt.name, tt.id, err)
		}
	}
}
