package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// withFormat is c with its format byte set to f.
func withFormat(c []byte, f byte) []byte {
	c = bytes.Clone(c)
	c[0] = f
	return c
}

func newKey32(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNew(t *testing.T, active []byte, previous ...[]byte) *Keyring {
	t.Helper()
	k, err := New(active, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const location = "vault.connections/0190/refresh_token"

var loc = Place{Location: location, Generation: "3"}

func TestSealOpen(t *testing.T) {
	a, b := newKey32(t), newKey32(t)
	ka := mustNew(t, a)
	sealed, err := ka.Seal(loc, []byte("refresh-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-secret")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	tamper := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	unknown := bytes.Clone(sealed)
	copy(unknown[1:5], []byte{1, 2, 3, 4})

	tests := []struct {
		name     string
		keyring  *Keyring
		location Place
		in       []byte
		want     string
		wantErr  error
	}{
		{name: "round trip", keyring: ka, location: loc, in: sealed, want: "refresh-secret"},
		{name: "old key opens after rotation", keyring: mustNew(t, b, a), location: loc, in: sealed, want: "refresh-secret"},
		{name: "wrong location", keyring: ka, location: Place{Location: "vault.connections/0191/refresh_token", Generation: "3"}, in: sealed, wantErr: ErrAuthentication},
		{name: "other field", keyring: ka, location: Place{Location: "vault.connections/0190/access_token", Generation: "3"}, in: sealed, wantErr: ErrAuthentication},
		{name: "earlier generation", keyring: ka, location: Place{Location: location, Generation: "2"}, in: sealed, wantErr: ErrAuthentication},
		{name: "later generation", keyring: ka, location: Place{Location: location, Generation: "4"}, in: sealed, wantErr: ErrAuthentication},
		{name: "no generation", keyring: ka, location: Place{Location: location}, in: sealed, wantErr: ErrAuthentication},
		{name: "generation moved into the location", keyring: ka, location: Place{Location: location + "\x003"}, in: sealed, wantErr: ErrAuthentication},
		{name: "tampered nonce", keyring: ka, location: loc, in: tamper(6), wantErr: ErrAuthentication},
		{name: "tampered body", keyring: ka, location: loc, in: tamper(len(sealed) - 20), wantErr: ErrAuthentication},
		{name: "tampered tag", keyring: ka, location: loc, in: tamper(len(sealed) - 1), wantErr: ErrAuthentication},
		{name: "tampered key id", keyring: ka, location: loc, in: tamper(2), wantErr: ErrUnknownKey},
		{name: "unknown key id", keyring: ka, location: loc, in: unknown, wantErr: ErrUnknownKey},
		{name: "key not configured", keyring: mustNew(t, b), location: loc, in: sealed, wantErr: ErrUnknownKey},
		{name: "format 2 read as format 1", keyring: ka, location: loc, in: withFormat(sealed, Format1), wantErr: ErrAuthentication},
		{name: "unknown format", keyring: ka, location: loc, in: withFormat(sealed, 3), wantErr: ErrMalformed},
		{name: "too short", keyring: ka, location: loc, in: sealed[:10], wantErr: ErrMalformed},
		{name: "empty", keyring: ka, location: loc, in: nil, wantErr: ErrMalformed},
		{name: "header only", keyring: ka, location: loc, in: sealed[:17], wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keyring.Open(tt.location, tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Fatalf("Open = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnknownKeyErrorNamesKeyID(t *testing.T) {
	a, b := newKey32(t), newKey32(t)
	sealed, _ := mustNew(t, a).Seal(loc, []byte("x"))
	_, err := mustNew(t, b).Open(loc, sealed)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.ID != IDOf(a) {
		t.Fatalf("err = %v, want UnknownKeyError naming %s", err, IDOf(a))
	}
	if !strings.Contains(err.Error(), IDOf(a).String()) {
		t.Fatalf("message %q does not name the key id", err)
	}
}

func TestNewSealsWithActiveKey(t *testing.T) {
	a, b := newKey32(t), newKey32(t)
	k := mustNew(t, b, a)
	sealed, err := k.Seal(loc, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := IDOfCiphertext(sealed)
	if err != nil || id != IDOf(b) {
		t.Fatalf("sealed with %s, want active %s", id, IDOf(b))
	}
	if !k.Current(sealed) {
		t.Fatal("Current = false for a fresh seal")
	}
	old, _ := mustNew(t, a).Seal(loc, []byte("x"))
	if k.Current(old) {
		t.Fatal("Current = true for a ciphertext of a previous key")
	}
	if !k.Holds(IDOf(a)) || !k.Holds(IDOf(b)) || k.Holds(IDOf(newKey32(t))) {
		t.Fatal("Holds is wrong")
	}
	if _, err := mustNew(t, a).Open(loc, sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old keyring opened a new seal: %v", err)
	}
	if !k.HasPrevious() || len(k.PreviousIDs()) != 1 || k.PreviousIDs()[0] != IDOf(a) {
		t.Fatalf("previous ids = %v", k.PreviousIDs())
	}
}

func TestNoncesDiffer(t *testing.T) {
	k := mustNew(t, newKey32(t))
	x, _ := k.Seal(loc, []byte("same"))
	y, _ := k.Seal(loc, []byte("same"))
	if bytes.Equal(x, y) {
		t.Fatal("two seals of the same plaintext are equal")
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
		t.Fatalf("short active key: %v", err)
	}
	if _, err := New(newKey32(t), make([]byte, 31)); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEYS_PREVIOUS") {
		t.Fatalf("short previous key: %v", err)
	}
	a := newKey32(t)
	k := mustNew(t, a, a)
	if k.HasPrevious() {
		t.Fatal("the active key listed as previous counts as a previous key")
	}
}

func TestKeyringLogsKeyIDsOnly(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	key := newKey32(t)
	k := mustNew(t, key)
	log.Info("x", "keyring", k)
	out := buf.String()
	if strings.Contains(out, string(key)) || strings.Contains(out, fmt.Sprintf("%x", key)) {
		t.Fatalf("key leaked: %s", out)
	}
	if !strings.Contains(buf.String(), IDOf(key).String()) {
		t.Fatalf("log = %s", out)
	}
}

// format1 was made by the keyring before format 2 (AAD = header ||
// location), with the key 0x00 0x01 ... 0x1f: what a database written before
// holds.
const format1 = "012fe7e3729a308a0db7f8bfc420e5bf3f09627f0470a9263c8bdf32030e1149a184daec97ad65665ae8eb75e612a0"

func TestFormat1StillOpens(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	old, err := hex.DecodeString(format1)
	if err != nil {
		t.Fatal(err)
	}
	k := mustNew(t, newKey32(t), key)
	if f, err := FormatOf(old); err != nil || f != Format1 {
		t.Fatalf("FormatOf = %d, %v", f, err)
	}
	// Bound to the location only: any generation opens it.
	for _, gen := range []string{"", "0", "41"} {
		got, err := k.Open(Place{Location: location, Generation: gen}, old)
		if err != nil || string(got) != "refresh-secret" {
			t.Fatalf("generation %q: %q, %v", gen, got, err)
		}
	}
	if _, err := k.Open(Place{Location: "vault.connections/0191/refresh_token"}, old); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("format 1 at another location: %v", err)
	}
	if k.Current(old) || mustNew(t, key).Current(old) {
		t.Fatal("a format 1 ciphertext is current, even under the active key")
	}
	if id, err := IDOfCiphertext(old); err != nil || id != IDOf(key) {
		t.Fatalf("IDOfCiphertext = %s, %v", id, err)
	}
}

func TestSealWritesFormat2(t *testing.T) {
	k := mustNew(t, newKey32(t))
	sealed, err := k.Seal(loc, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := FormatOf(sealed); err != nil || f != Format2 || Format != Format2 {
		t.Fatalf("FormatOf = %d, %v", f, err)
	}
	if _, err := FormatOf(sealed[:16]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
}

func TestParseKeyID(t *testing.T) {
	id := IDOf(newKey32(t))
	got, err := ParseKeyID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseKeyID(%s) = %s, %v", id, got, err)
	}
	for _, bad := range []string{"", "abc", "0102030405", "zzzzzzzz"} {
		if _, err := ParseKeyID(bad); err == nil {
			t.Errorf("ParseKeyID(%q) accepted", bad)
		}
	}
}
