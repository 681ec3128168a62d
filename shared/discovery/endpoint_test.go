package discovery_test

import (
	"testing"

	"github.com/nexus-broker/nexus/shared/discovery"
)

func TestCheckEndpoint(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example.com/auth": true, "http://127.0.0.1:8080/auth": true, "http://localhost/auth": true,
		"http://[::1]:9/a": true, "http://127.8.9.10/a": true,
		"http://idp.example.com/auth": false, "http://localhost.evil.com/a": false, "http://127.0.0.1.nip.io/a": false,
		"ftp://idp.example.com": false, "https://u:p@idp.example.com": false, "https://idp.example.com/#": false,
		"https://idp.example.com/a#frag": false, "/auth": false, "javascript:alert(1)": false, "": false,
	} {
		if err := discovery.CheckEndpoint(raw); (err == nil) != ok {
			t.Errorf("CheckEndpoint(%q) = %v, want ok=%v", raw, err, ok)
		}
	}
}
