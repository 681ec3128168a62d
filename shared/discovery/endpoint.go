package discovery

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// CheckEndpoint is the rule for every provider URL (issuers, endpoints,
// verification requests): an absolute https URL, or http on a loopback host
// (127.0.0.0/8, ::1, localhost) for tests and local development; no user
// information, no fragment.
func CheckEndpoint(raw string) error {
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
		return nil
	case "http":
		if Loopback(u.Hostname()) {
			return nil
		}
		return errors.New("must use https (http is allowed only on loopback hosts)")
	}
	return errors.New("must use https")
}

// Loopback reports whether host is localhost or a loopback IP.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
