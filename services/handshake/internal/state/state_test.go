package state

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func key(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

const ref = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := NewSigner(key(t))
	good := s.Sign(ref, now.Add(10*time.Minute))

	flip := []byte(good)
	flip[3] ^= 1
	macFlip := []byte(good)
	macFlip[len(macFlip)-2] ^= 1
	p, _, _ := strings.Cut(good, ".")
	_, m, _ := strings.Cut(NewSigner(key(t)).Sign("other", now.Add(time.Hour)), ".")

	tests := []struct {
		name   string
		signer *Signer
		token  string
		now    time.Time
		want   error
	}{
		{"round trip", s, good, now, nil},
		{"one second before expiry", s, good, now.Add(10*time.Minute - time.Second), nil},
		{"expired at expiry", s, good, now.Add(10 * time.Minute), ErrExpired},
		{"expired later", s, good, now.Add(time.Hour), ErrExpired},
		{"tampered payload", s, string(flip), now, ErrInvalid},
		{"tampered mac", s, string(macFlip), now, ErrInvalid},
		{"mac from another token", s, p + "." + m, now, ErrInvalid},
		{"wrong key", NewSigner(key(t)), good, now, ErrInvalid},
		{"empty", s, "", now, ErrInvalid},
		{"no dot", s, "abc", now, ErrInvalid},
		{"two dots", s, good + ".x", now, ErrInvalid},
		{"empty payload", s, "." + m, now, ErrInvalid},
		{"garbage", s, "%%%.***", now, ErrInvalid},
		{"too long", s, strings.Repeat("a", 600) + "." + m, now, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.Verify(tt.token, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && got != ref {
				t.Fatalf("ref = %q, want %q", got, ref)
			}
		})
	}
}

func TestStateCarriesNothingButRefAndExpiry(t *testing.T) {
	s := NewSigner(key(t))
	tok := s.Sign(ref, time.Unix(1_700_000_600, 0))
	p, _, _ := strings.Cut(tok, ".")
	raw, err := b64.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"r":"` + ref + `","x":1700000600}`; string(raw) != want {
		t.Fatalf("payload = %s, want %s", raw, want)
	}
}

func TestBinder(t *testing.T) {
	b := NewBinder(key(t))
	v := b.Value(ref)
	if !b.Check(ref, v) {
		t.Fatal("own value refused")
	}
	for name, presented := range map[string]string{
		"empty": "", "garbage": "!!", "other flow": b.Value(ref[:63] + "0"),
		"other key": NewBinder(key(t)).Value(ref), "truncated": v[:10],
	} {
		if b.Check(ref, presented) {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := b.CookieName(ref); n != "nexus_hs_0123456789abcdef" {
		t.Errorf("cookie name %q", n)
	}
}

func FuzzVerifyState(f *testing.F) {
	k := make([]byte, 32)
	s := NewSigner(k)
	good := s.Sign(ref, time.Unix(2_000_000_000, 0))
	f.Add(good)
	f.Add(good[:len(good)-1] + "B") // another last character: a forgery or a non-canonical MAC
	f.Add("")
	f.Add(".")
	f.Add("eyJyIjoiIiwieCI6MH0.AAAA")
	f.Add("a.b.c")
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, token string) {
		got, err := s.Verify(token, now)
		if err == nil && got == "" {
			t.Fatalf("accepted %q with an empty ref", token)
		}
		if err == nil && s.Sign(got, time.Unix(0, 0)) == "" {
			t.Fatal("unreachable")
		}
		if err == nil {
			// Only the canonical spelling of a MAC is accepted.
			_, m, _ := strings.Cut(token, ".")
			mac, _ := base64.RawURLEncoding.DecodeString(m)
			if base64.RawURLEncoding.EncodeToString(mac) != m {
				t.Fatalf("accepted %q with a non-canonical MAC", token)
			}
		}
	})
}
