package discovery_test

import (
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
)

func TestCheckEndpoint(t *testing.T) {
	loopback, errs := egress.ParseNetworks("127.0.0.1/32,::1/128")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	private, _ := egress.ParseNetworks("10.0.0.0/8")
	tests := []struct {
		raw     string
		private egress.Networks
		want    string // "" for accepted
	}{
		{"https://idp.example.com/auth", nil, ""},
		{"https://idp.example.com/auth", loopback, ""},
		// Without PROVIDER_PRIVATE_NETWORKS, no plain http at all, and no
		// loopback either.
		{"http://idp.example.com/auth", nil, "must use https (plain http is allowed only to networks listed in PROVIDER_PRIVATE_NETWORKS, which is empty)"},
		{"http://127.0.0.1:8080/auth", nil, "must use https"},
		{"https://127.0.0.1:8080/auth", nil, "127.0.0.1 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS"},
		{"https://localhost/auth", nil, "localhost resolves to 127.0.0.1, a loopback address"},
		{"https://[::1]:9/a", nil, "::1 is a loopback address"},
		{"https://169.254.169.254/latest/meta-data/", nil, "a cloud metadata address"},
		{"https://10.0.0.5/token", nil, "10.0.0.5 is a private address"},
		{"https://[::ffff:10.0.0.5]/token", nil, "::ffff:10.0.0.5 is 10.0.0.5, a private address"},
		// With it, http is accepted for names (the guard judges them
		// where they resolve) and for listed addresses.
		{"http://127.0.0.1:8080/auth", loopback, ""},
		{"http://localhost/auth", loopback, ""},
		{"http://LOCALHOST./auth", loopback, ""},
		{"http://[::1]:9/a", loopback, ""},
		{"http://idp.corp.example/auth", private, ""},
		{"http://10.1.2.3/auth", private, ""},
		{"http://127.0.0.2/a", loopback, "127.0.0.2 is a loopback address; add its network"},
		{"https://127.0.0.2/a", loopback, "127.0.0.2 is a loopback address"},
		{"http://127.0.0.1/a", private, "127.0.0.1 is a loopback address"},
		{"http://localhost/a", private, "localhost resolves to 127.0.0.1, a loopback address"},
		{"http://93.184.216.34/a", private, "plain http to 93.184.216.34 refused"},
		{"https://93.184.216.34/a", nil, ""},
		// The rest of the rule.
		{"http://localhost.evil.com/a", nil, "must use https"},
		{"ftp://idp.example.com", loopback, "must use https"},
		{"https://u:p@idp.example.com", nil, "must not carry user information"},
		{"https://idp.example.com/#", nil, "must not have a fragment"},
		{"https://idp.example.com/a#frag", nil, "must not have a fragment"},
		{"/auth", nil, "must be an absolute URL"},
		{"javascript:alert(1)", nil, "must be an absolute URL"},
		{"", nil, "must be an absolute URL"},
	}
	for _, tc := range tests {
		err := discovery.CheckEndpoint(tc.raw, tc.private)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckEndpoint(%q, %s) = %v, want accepted", tc.raw, tc.private, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckEndpoint(%q, %s) = %v, want %q", tc.raw, tc.private, err, tc.want)
		}
	}
}
