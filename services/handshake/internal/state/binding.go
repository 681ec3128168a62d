package state

// Binder ties a flow to the browser that opened its connect link: the
// connect page sets a cookie holding Value(ref), and the callback accepts
// only a browser that presents it.
type Binder struct {
	keys [][]byte
}

// NewBinder returns a Binder for keys derived for this purpose
// (keys.InfoBinding): key makes cookie values, it and previous check them.
func NewBinder(key []byte, previous ...[]byte) *Binder {
	return &Binder{keys: append([][]byte{key}, previous...)}
}

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
	return b64.EncodeToString(mac(b.keys[0], bindingMsg(ref)))
}

// Check reports, in constant time, whether presented is the value for ref.
func (b *Binder) Check(ref, presented string) bool {
	got, err := decode(presented)
	if err != nil {
		return false
	}
	return anyMAC(b.keys, got, bindingMsg(ref))
}

func bindingMsg(ref string) []byte { return []byte("binding\x00" + ref) }
