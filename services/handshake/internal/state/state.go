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

var b64 = base64.RawURLEncoding

// Signer makes and checks state values with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer for a key derived for this purpose
// (keys.InfoState).
func NewSigner(key []byte) *Signer { return &Signer{key: key} }

type payload struct {
	Ref string `json:"r"`
	Exp int64  `json:"x"`
}

// Sign returns base64url(payload) "." base64url(HMAC-SHA256(payload part)).
func (s *Signer) Sign(ref string, expires time.Time) string {
	body, _ := json.Marshal(payload{Ref: ref, Exp: expires.Unix()})
	p := b64.EncodeToString(body)
	return p + "." + b64.EncodeToString(s.mac(p))
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
	got, err := b64.DecodeString(m)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return "", ErrInvalid
	}
	raw, err := b64.DecodeString(p)
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

func (s *Signer) mac(p string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(p))
	return h.Sum(nil)
}
