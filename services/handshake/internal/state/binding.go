package state

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Binder ties a flow to the browser that opened its connect link: the
// connect page sets a cookie holding Value(ref), and the callback accepts
// only a browser that presents it.
type Binder struct {
	key []byte
}

// NewBinder returns a Binder for a key derived for this purpose
// (keys.InfoBinding).
func NewBinder(key []byte) *Binder { return &Binder{key: key} }

// CookieName is the binding cookie's name for a flow. It is per flow so that
// two consents started in one browser do not overwrite each other.
func (b *Binder) CookieName(ref string) string {
	if len(ref) > 16 {
		ref = ref[:16]
	}
	return "nexus_hs_" + ref
}

// Value is the cookie value for a flow.
func (b *Binder) Value(ref string) string {
	return b64.EncodeToString(b.mac(ref))
}

// Check reports, in constant time, whether presented is the value for ref.
func (b *Binder) Check(ref, presented string) bool {
	got, err := decode(presented)
	if err != nil {
		return false
	}
	return hmac.Equal(got, b.mac(ref))
}

func (b *Binder) mac(ref string) []byte {
	h := hmac.New(sha256.New, b.key)
	h.Write([]byte("binding\x00" + ref))
	return h.Sum(nil)
}
