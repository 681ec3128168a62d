package discovery

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"

	"github.com/nexus-broker/nexus/shared/egress"
)

// CheckEndpoint is the rule for every provider URL (issuers, endpoints,
// verification requests) when a provider is registered, the one admin, the
// handshake and the vault apply: an absolute https URL, or http when
// PROVIDER_PRIVATE_NETWORKS (private) lists networks, since plain http goes
// only there; no user information, no fragment. A host written as an IP
// address, or localhost, must be one the egress guard would connect to. A
// host name is judged by the guard where it resolves, at every request.
func CheckEndpoint(raw string, private egress.Networks) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("must be an absolute URL")
	}
	if u.User != nil {
		return errors.New("must not carry user information")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return errors.New("must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if len(private) == 0 {
			return errors.New("must use https (plain http is allowed only to networks listed in " + egress.Variable + ", which is empty)")
		}
	default:
		return errors.New("must use https")
	}
	return checkHost(u.Hostname(), private, u.Scheme == "http")
}

// checkHost applies the guard to a host that needs no lookup: an IP
// address, or localhost (RFC 6761: always loopback), which passes when
// either 127.0.0.1 or ::1 does.
func checkHost(host string, private egress.Networks, plainHTTP bool) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return private.Check(host, a, plainHTTP)
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h != "localhost" && !strings.HasSuffix(h, ".localhost") {
		return nil
	}
	var first error
	for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
		err := private.Check(host, a, plainHTTP)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}
