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
