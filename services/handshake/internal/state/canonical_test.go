package state

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// A 32-byte MAC is 43 base64url characters: 258 bits for 256, so the last
// character has two unused low bits. nonCanonical sets the lowest of them:
// a lenient decoder reads the same bytes, a strict one refuses the text.
func nonCanonical(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	out := s[:len(s)-1] + string(alphabet[i^1])
	a, err1 := base64.RawURLEncoding.DecodeString(s)
	b, err2 := base64.RawURLEncoding.DecodeString(out)
	if len(s) != 43 || err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("%q is not another spelling of the 32 bytes %q encodes", out, s)
	}
	return out
}

// withLineBreak inserts a LF, which base64's decoders skip even when strict.
func withLineBreak(s string) string { return s[:10] + "\n" + s[10:] }

func TestStateRefusesNonCanonicalMAC(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := NewSigner(key(t))
	good := s.Sign(ref, now.Add(time.Minute))
	p, m, _ := strings.Cut(good, ".")
	for name, token := range map[string]string{
		"unused bit set in the mac": p + "." + nonCanonical(t, m),
		"line break in the mac":     p + "." + withLineBreak(m),
		"line break in the payload": withLineBreak(p) + "." + m,
	} {
		if _, err := s.Verify(token, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Verify err = %v, want ErrInvalid", name, err)
		}
	}
	if got, err := s.Verify(good, now); err != nil || got != ref {
		t.Fatalf("genuine state: %q, %v", got, err)
	}
}

func TestBinderRefusesNonCanonicalValue(t *testing.T) {
	b := NewBinder(key(t))
	v := b.Value(ref)
	for name, presented := range map[string]string{
		"unused bit set": nonCanonical(t, v),
		"line break":     withLineBreak(v),
	} {
		if b.Check(ref, presented) {
			t.Errorf("%s: accepted", name)
		}
	}
	if !b.Check(ref, v) {
		t.Fatal("genuine value refused")
	}
}

func TestCSRFRefusesNonCanonicalToken(t *testing.T) {
	c := NewCSRF(key(t))
	nonce := c.Nonce()
	tok := c.Token(ref, nonce)
	for name, token := range map[string]string{
		"unused bit set": nonCanonical(t, tok),
		"line break":     withLineBreak(tok),
	} {
		if c.Check(ref, nonce, token) {
			t.Errorf("%s: accepted", name)
		}
	}
	if !c.Check(ref, nonce, tok) {
		t.Fatal("genuine token refused")
	}
}
