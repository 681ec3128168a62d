// Package state signs and verifies the OAuth2 `state` parameter and the
// browser-binding cookie. Neither carries anything secret: state names the
// flow by its lookup reference (never the flow id, never the PKCE verifier)
// and its expiry, authenticated with HMAC-SHA256.
package state

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Errors callers branch on.
var (
	// ErrInvalid: not a state this service made (malformed, forged, tampered).
	ErrInvalid = errors.New("state: invalid")
	// ErrExpired: a genuine state whose flow has expired.
	ErrExpired = errors.New("state: expired")
)

// maxLen bounds the state accepted for verification; real ones are ~130 bytes.
const maxLen = 512

// b64 is unpadded base64url that decodes only canonical text: Strict refuses
// set bits after the last whole byte, so the last character of a 32-byte MAC
// (4 significant bits of 6) has one spelling, not four.
var b64 = base64.RawURLEncoding.Strict()

// decode reads text that must be exactly b64's encoding of its value. Strict
// still skips CR and LF, so those are refused here.
func decode(s string) ([]byte, error) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, base64.CorruptInputError(i)
	}
	return b64.DecodeString(s)
}

// Signer makes state values with one key and checks them with it and any
// previous keys (a STATE_KEY rotation under way).
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer for keys derived for this purpose
// (keys.InfoState): key signs, it and previous verify.
func NewSigner(key []byte, previous ...[]byte) *Signer {
	return &Signer{keys: append([][]byte{key}, previous...)}
}

type payload struct {
	Ref string `json:"r"`
	Exp int64  `json:"x"`
}

// Sign returns base64url(payload) "." base64url(HMAC-SHA256(payload part)).
func (s *Signer) Sign(ref string, expires time.Time) string {
	body, _ := json.Marshal(payload{Ref: ref, Exp: expires.Unix()})
	p := b64.EncodeToString(body)
	return p + "." + b64.EncodeToString(mac(s.keys[0], []byte(p)))
}

// Verify checks token's MAC in constant time, then its expiry against now,
// and returns the flow reference it names.
func (s *Signer) Verify(token string, now time.Time) (string, error) {
	if len(token) == 0 || len(token) > maxLen {
		return "", ErrInvalid
	}
	p, m, ok := strings.Cut(token, ".")
	if !ok || p == "" || strings.Contains(m, ".") {
		return "", ErrInvalid
	}
	got, err := decode(m)
	if err != nil || !anyMAC(s.keys, got, []byte(p)) {
		return "", ErrInvalid
	}
	raw, err := decode(p)
	if err != nil {
		return "", ErrInvalid
	}
	var pl payload
	if err := json.Unmarshal(raw, &pl); err != nil || pl.Ref == "" || pl.Exp <= 0 {
		return "", ErrInvalid
	}
	if !now.Before(time.Unix(pl.Exp, 0)) {
		return "", ErrExpired
	}
	return pl.Ref, nil
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// anyMAC reports whether got is msg's MAC under one of keys, comparing with
// every key in constant time (how many keys there are is no secret).
func anyMAC(keys [][]byte, got, msg []byte) bool {
	ok := false
	for _, k := range keys {
		if hmac.Equal(got, mac(k, msg)) {
			ok = true
		}
	}
	return ok
}
