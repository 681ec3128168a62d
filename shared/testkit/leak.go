package testkit

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// Leak returns the part of secret that text shows: the secret as written
// or URL-decoded, or any run of three or more letters and digits of it; ""
// when text shows none of it.
func Leak(text, secret string) string {
	for _, s := range []string{secret, strings.ReplaceAll(secret, "%2F", "/"), strings.ReplaceAll(secret, "%20", " ")} {
		if strings.Contains(text, s) {
			return s
		}
	}
	for _, piece := range strings.FieldsFunc(secret, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if len(piece) >= 3 && strings.Contains(text, piece) {
			return piece
		}
	}
	return ""
}

// ClosedPort is a loopback port nothing listens on (for a connection
// that must fail).
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}
