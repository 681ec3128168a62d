package discovery

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// CheckEndpoint reports whether raw may be used as a provider URL: an
// absolute https URL, or http on a loopback host (127.0.0.0/8, ::1,
// localhost) for tests and local development; no userinfo, no fragment.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return errors.New("is not an absolute URL")
	}
	if u.User != nil || u.Fragment != "" {
		return errors.New("must not carry userinfo or a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if Loopback(u.Hostname()) {
			return nil
		}
		return errors.New("must be https (http is allowed only on loopback hosts)")
	}
	return errors.New("must be https")
}

// Loopback reports whether host is localhost or a loopback IP.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
