package state

import "crypto/rand"

// CSRF protects the hosted credential form against cross-site submission.
// Each render of the form draws a random nonce, kept in an HttpOnly,
// SameSite=Strict cookie scoped to the flow's path, and puts
// Token(ref, nonce) = HMAC(key, ref, nonce) in a hidden field. A submission
// is accepted only when the field matches the cookie's nonce and the flow it
// is posted to: another site can neither read the token nor make the
// browser send the cookie, and a token is worthless for another flow.
type CSRF struct {
	keys [][]byte
}

// NewCSRF returns a CSRF for keys derived for this purpose (keys.InfoCSRF):
// key makes tokens, it and previous check them.
func NewCSRF(key []byte, previous ...[]byte) *CSRF {
	return &CSRF{keys: append([][]byte{key}, previous...)}
}

// CSRFCookieName is the nonce cookie's name for a flow.
func CSRFCookieName(ref string) string {
	if len(ref) > 16 {
		ref = ref[:16]
	}
	return "nexus_csrf_" + ref
}

// Nonce returns a fresh per-render nonce: 32 random bytes, base64url.
func (c *CSRF) Nonce() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// Token is the hidden field's value for a flow and a nonce.
func (c *CSRF) Token(ref, nonce string) string {
	return b64.EncodeToString(mac(c.keys[0], csrfMsg(ref, nonce)))
}

// Check reports, in constant time, whether token was made for ref and nonce.
func (c *CSRF) Check(ref, nonce, token string) bool {
	if nonce == "" || token == "" || len(nonce) > 64 || len(token) > 64 {
		return false
	}
	got, err := decode(token)
	if err != nil {
		return false
	}
	return anyMAC(c.keys, got, csrfMsg(ref, nonce))
}

func csrfMsg(ref, nonce string) []byte { return []byte("csrf\x00" + ref + "\x00" + nonce) }
