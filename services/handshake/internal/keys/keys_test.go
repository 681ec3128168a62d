package keys

import (
	"bytes"
	"testing"
)

func TestDerive(t *testing.T) {
	master := bytes.Repeat([]byte{1}, 32)
	a, err := Derive(master, InfoState)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Derive(master, InfoBinding)
	c, _ := Derive(master, InfoFlow)
	d, _ := Derive(master, InfoCSRF)
	if bytes.Equal(d, a) || bytes.Equal(d, b) || bytes.Equal(d, c) {
		t.Fatal("the CSRF key equals another purpose's key")
	}
	again, _ := Derive(master, InfoState)
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(b, c) || !bytes.Equal(a, again) || bytes.Equal(a, master) {
		t.Fatal("derived keys must be 32 bytes, distinct per purpose, deterministic, and not the master key")
	}
	if _, err := Derive(master[:16], InfoState); err == nil {
		t.Fatal("short master key accepted")
	}
}

func TestRing(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	r, err := NewRing(b, a)
	if err != nil {
		t.Fatal(err)
	}
	active, previous := r.For(InfoFlow)
	wantActive, _ := Derive(b, InfoFlow)
	wantPrev, _ := Derive(a, InfoFlow)
	if !bytes.Equal(active, wantActive) || len(previous) != 1 || !bytes.Equal(previous[0], wantPrev) {
		t.Fatal("For does not derive from STATE_KEY, then each previous key")
	}
	if _, p := must(NewRing(b)).For(InfoState); p != nil {
		t.Fatal("previous keys without STATE_KEYS_PREVIOUS")
	}
	if _, err := NewRing(b, a[:31]); err == nil {
		t.Fatal("a short previous key accepted")
	}
	if _, err := NewRing(b[:16]); err == nil {
		t.Fatal("a short STATE_KEY accepted")
	}
}

func must(r *Ring, err error) *Ring {
	if err != nil {
		panic(err)
	}
	return r
}
