package state

import (
	"bytes"
	"testing"
)

func TestCSRF(t *testing.T) {
	c := NewCSRF(bytes.Repeat([]byte{3}, 32))
	n1, n2 := c.Nonce(), c.Nonce()
	if n1 == n2 || len(n1) != 43 {
		t.Fatalf("nonces %q %q", n1, n2)
	}
	tok := c.Token("ref-a", n1)
	if !c.Check("ref-a", n1, tok) {
		t.Fatal("genuine token refused")
	}
	other := NewCSRF(bytes.Repeat([]byte{4}, 32))
	for name, ok := range map[string]bool{
		"other flow":  c.Check("ref-b", n1, tok),
		"other nonce": c.Check("ref-a", n2, tok),
		"other key":   other.Check("ref-a", n1, tok),
		"no token":    c.Check("ref-a", n1, ""),
		"no nonce":    c.Check("ref-a", "", tok),
		"garbage":     c.Check("ref-a", n1, "!!!"),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if CSRFCookieName("0123456789abcdef0123") != "nexus_csrf_0123456789abcdef" {
		t.Error("cookie name")
	}
}
