package state

import (
	"errors"
	"testing"
	"time"
)

// TestStateKeyRotation: what the old key made (state, binding cookie, CSRF
// token) is accepted while the old key is among the previous ones, and not
// once it is dropped; the new key alone makes new values.
func TestStateKeyRotation(t *testing.T) {
	a, b := key(t), key(t)
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(10 * time.Minute)

	st := NewSigner(a).Sign(ref, exp)
	if got, err := NewSigner(b, a).Verify(st, now); err != nil || got != ref {
		t.Fatalf("state of the old key during the rotation: %q, %v", got, err)
	}
	if _, err := NewSigner(b).Verify(st, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("state of the old key once dropped: %v", err)
	}
	if _, err := NewSigner(b, a).Verify(st, exp); !errors.Is(err, ErrExpired) {
		t.Fatalf("an expired state of the old key: %v", err)
	}
	fresh := NewSigner(b, a).Sign(ref, exp)
	if _, err := NewSigner(a).Verify(fresh, now); !errors.Is(err, ErrInvalid) {
		t.Fatal("a state made during the rotation is signed with the old key")
	}
	if _, err := NewSigner(b).Verify(fresh, now); err != nil {
		t.Fatalf("a state made during the rotation, the old key dropped: %v", err)
	}

	cookie := NewBinder(a).Value(ref)
	if !NewBinder(b, a).Check(ref, cookie) || NewBinder(b).Check(ref, cookie) || NewBinder(b, a).Check("other", cookie) {
		t.Fatal("binding cookie across the rotation")
	}
	if NewBinder(b, a).Value(ref) != NewBinder(b).Value(ref) {
		t.Fatal("binding cookies are not made with the new key")
	}

	c := NewCSRF(a)
	nonce := c.Nonce()
	tok := c.Token(ref, nonce)
	if !NewCSRF(b, a).Check(ref, nonce, tok) || NewCSRF(b).Check(ref, nonce, tok) || NewCSRF(b, a).Check(ref, NewCSRF(a).Nonce(), tok) {
		t.Fatal("CSRF token across the rotation")
	}
	if NewCSRF(b, a).Token(ref, nonce) != NewCSRF(b).Token(ref, nonce) {
		t.Fatal("CSRF tokens are not made with the new key")
	}
}
