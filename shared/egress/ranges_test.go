package egress_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/shared/egress"
)

func networks(t *testing.T, list string) egress.Networks {
	t.Helper()
	n, errs := egress.ParseNetworks(list)
	if len(errs) > 0 {
		t.Fatalf("ParseNetworks(%q): %v", list, errs)
	}
	return n
}

// TestCheck: what the guard refuses after resolution, for https and plain
// http, with and without listed networks.
func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		private string
		addr    string
		http    bool
		want    string // "" allowed, else a part of the refusal
	}{
		{"public https", "", "93.184.216.34", false, ""},
		{"public v6 https", "", "2606:2800:220:1:248:1893:25c8:1946", false, ""},
		{"public http", "", "93.184.216.34", true, "plain http"},
		{"public http even with a list", "10.0.0.0/8", "93.184.216.34", true, "does not list it"},
		{"loopback", "", "127.0.0.1", false, "a loopback address"},
		{"loopback alias", "127.0.0.1/32", "127.0.0.2", false, "a loopback address"},
		{"loopback listed", "127.0.0.1/32", "127.0.0.1", true, ""},
		{"v6 loopback", "", "::1", false, "a loopback address"},
		{"v6 loopback listed", "::1/128", "::1", true, ""},
		{"private 10", "", "10.0.0.5", false, "a private address (RFC 1918); add its network to PROVIDER_PRIVATE_NETWORKS"},
		{"private 172", "", "172.31.255.1", false, "a private address"},
		{"private 192.168", "", "192.168.1.1", false, "a private address"},
		{"private listed", "10.20.0.0/16", "10.20.3.4", false, ""},
		{"private listed, http", "10.20.0.0/16", "10.20.3.4", true, ""},
		{"private outside the list", "10.20.0.0/16", "10.21.0.1", false, "a private address"},
		{"cgnat", "", "100.64.0.1", false, "carrier-grade NAT"},
		{"link-local", "", "169.254.1.1", false, "a link-local address"},
		{"unspecified", "", "0.0.0.0", false, "unspecified"},
		{"this network", "", "0.1.2.3", false, "unspecified"},
		{"documentation", "", "203.0.113.9", false, "a documentation address"},
		{"benchmarking", "", "198.18.0.1", false, "benchmarking"},
		{"multicast", "", "224.0.0.1", false, "a multicast address"},
		{"broadcast", "", "255.255.255.255", false, "reserved"},
		{"class E", "", "240.0.0.1", false, "reserved"},
		{"ula", "", "fd12:3456::1", false, "a unique local address"},
		{"v6 link-local", "", "fe80::1", false, "a link-local address"},
		{"v6 link-local with a zone", "", "fe80::1%eth0", false, "a link-local address"},
		{"v6 multicast", "", "ff02::1", false, "a multicast address"},
		{"v6 unspecified", "", "::", false, "unspecified"},
		{"v6 documentation", "", "2001:db8::1", false, "a documentation address"},
		{"teredo", "", "2001::1", false, "Teredo"},
		{"6to4", "", "2002:a00:5::1", false, "6to4"},
		{"v4-compatible", "", "::10.0.0.5", false, "reserved"},
		{"outside global unicast", "", "4000::1", false, "reserved"},
		{"mapped loopback", "", "::ffff:127.0.0.1", false, "::ffff:127.0.0.1 is 127.0.0.1, a loopback address"},
		{"mapped private", "", "::ffff:10.0.0.5", false, "a private address"},
		{"mapped listed", "10.0.0.0/8", "::ffff:10.0.0.5", false, ""},
		{"mapped metadata", "", "::ffff:169.254.169.254", false, "a cloud metadata address"},
		{"nat64 of private", "", "64:ff9b::a00:5", false, "a NAT64 address of 10.0.0.5, a private address"},
		{"nat64 of public", "", "64:ff9b::5db8:d822", false, ""},
		{"local nat64 listed", "64:ff9b:1::/48", "64:ff9b:1::a00:5", false, ""},
		{"local nat64 of metadata, /96 layout", "64:ff9b:1::/48", "64:ff9b:1::a9fe:a9fe", false, "a local-use NAT64 address"},
		{"local nat64 of metadata, /48 layout", "64:ff9b:1::/48", "64:ff9b:1:a9fe:a9:fe00::", false, "a local-use NAT64 address"},
		{"metadata", "", "169.254.169.254", false, "a cloud metadata address, refused unless PROVIDER_PRIVATE_NETWORKS lists that address alone (169.254.169.254/32)"},
		{"metadata in a listed range", "169.254.0.0/16", "169.254.169.254", false, "a cloud metadata address"},
		{"metadata listed alone", "169.254.169.254/32", "169.254.169.254", false, ""},
		{"aws v6 metadata", "fc00::/7", "fd00:ec2::254", false, "a cloud metadata address"},
		{"alibaba metadata", "100.64.0.0/10", "100.100.100.200", false, "a cloud metadata address"},
		{"ecs credentials", "", "169.254.170.2", false, "a cloud metadata address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := networks(t, tc.private)
			a := netip.MustParseAddr(tc.addr)
			err := n.Check(tc.addr, a, tc.http)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *egress.RefusedError
			if !errors.As(err, &re) || !errors.Is(err, egress.ErrRefused) {
				t.Fatalf("err = %v, want a *RefusedError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestRefusalNamesHostAndAddress: a name is reported with what it resolved
// to, an address literal as itself.
func TestRefusalNamesHostAndAddress(t *testing.T) {
	var n egress.Networks
	err := n.Check("idp.corp.example", netip.MustParseAddr("10.0.0.5"), false)
	want := "idp.corp.example resolves to 10.0.0.5, a private address (RFC 1918); add its network to PROVIDER_PRIVATE_NETWORKS to allow it"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	err = n.Check("idp.example.com", netip.MustParseAddr("93.184.216.34"), true)
	want = "plain http to idp.example.com refused: it resolves to 93.184.216.34, which PROVIDER_PRIVATE_NETWORKS does not list; use https (plain http goes only to the networks listed there)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	err = n.Check("::1", netip.MustParseAddr("::1"), false)
	if want := "::1 is a loopback address; add its network"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start %q", err, want)
	}
}

func TestParseNetworks(t *testing.T) {
	n, errs := egress.ParseNetworks(" 127.0.0.0/8, ::1/128 ,10.20.0.0/16,,fd12:3456::/48,192.168.1.7,::ffff:172.16.0.0/108")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := n.String(), "127.0.0.0/8,::1/128,10.20.0.0/16,fd12:3456::/48,192.168.1.7/32,172.16.0.0/12"; got != want {
		t.Errorf("networks = %s, want %s", got, want)
	}
	if n, errs := egress.ParseNetworks(""); len(n) != 0 || len(errs) != 0 {
		t.Errorf("empty: %v %v", n, errs)
	}

	// Every bad entry is reported, each saying what is wrong with it.
	n, errs = egress.ParseNetworks("10.0.0.0/8,not-a-cidr,10.0.0.5/8,0.0.0.0/0,8.8.8.0/24,::/0,10.0.0.0/7,fe80::1%eth0,127.0.0.1/33")
	want := []string{
		`"not-a-cidr" is not a CIDR network`,
		`"10.0.0.5/8" has bits set past its prefix length: write 10.0.0.0/8 for the network, or 10.0.0.5/32 for the one address`,
		`0.0.0.0/0 includes public addresses`,
		`8.8.8.0/24 includes public addresses`,
		`::/0 includes public addresses`,
		`10.0.0.0/7 includes public addresses`,
		`"fe80::1%eth0" is not a CIDR network`,
		`"127.0.0.1/33" is not a CIDR network`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to say %q", i, errs[i], w)
		}
	}
	if n.String() != "10.0.0.0/8" {
		t.Errorf("the valid entries are kept: %s", n)
	}
}
