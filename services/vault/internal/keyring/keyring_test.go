package keyring

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

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

const loc = "vault.connections/0190/refresh_token"

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
		location string
		in       []byte
		want     string
		wantErr  error
	}{
		{name: "round trip", keyring: ka, location: loc, in: sealed, want: "refresh-secret"},
		{name: "old key opens after rotation", keyring: mustNew(t, b, a), location: loc, in: sealed, want: "refresh-secret"},
		{name: "wrong location", keyring: ka, location: "vault.connections/0191/refresh_token", in: sealed, wantErr: ErrAuthentication},
		{name: "other field", keyring: ka, location: "vault.connections/0190/access_token", in: sealed, wantErr: ErrAuthentication},
		{name: "tampered nonce", keyring: ka, location: loc, in: tamper(6), wantErr: ErrAuthentication},
		{name: "tampered body", keyring: ka, location: loc, in: tamper(len(sealed) - 20), wantErr: ErrAuthentication},
		{name: "tampered tag", keyring: ka, location: loc, in: tamper(len(sealed) - 1), wantErr: ErrAuthentication},
		{name: "tampered key id", keyring: ka, location: loc, in: tamper(2), wantErr: ErrUnknownKey},
		{name: "unknown key id", keyring: ka, location: loc, in: unknown, wantErr: ErrUnknownKey},
		{name: "key not configured", keyring: mustNew(t, b), location: loc, in: sealed, wantErr: ErrUnknownKey},
		{name: "bad version", keyring: ka, location: loc, in: tamper(0), wantErr: ErrMalformed},
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
	if !k.SealedWithActive(sealed) {
		t.Fatal("SealedWithActive = false for a fresh seal")
	}
	old, _ := mustNew(t, a).Seal(loc, []byte("x"))
	if k.SealedWithActive(old) {
		t.Fatal("SealedWithActive = true for a ciphertext of a previous key")
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
