package system

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// The development provider: when NEXUS_DEV_PROVIDER names a loopback
// address, `make run` also runs testing/oidcprovider there (fosite: discovery,
// JWKS, PKCE, rotating refresh tokens, revocation) with its sign-in page, so
// a consent can be tried end to end on a machine with no internet. Only the
// launcher starts it; the services' binaries never link it. It keeps
// nothing across restarts: grants made before are gone, and the refresh of
// their connections is refused (invalid_grant), as a provider's would be
// after the user revoked the app.
const (
	DevProviderVar       = "NEXUS_DEV_PROVIDER"
	DevProviderTTLVar    = "NEXUS_DEV_PROVIDER_TOKEN_TTL"
	DevProviderSecretVar = "NEXUS_DEV_PROVIDER_CLIENT_SECRET"
	// DevProviderClientID is the broker's client at the dev provider.
	DevProviderClientID = "nexus-dev"
	// DevProviderListener is the dev provider's key in Preflight's listeners.
	DevProviderListener = "dev-provider"
	// DefaultDevProviderTTL is its access tokens' lifetime, as common
	// providers' (Google's is an hour); NEXUS_DEV_PROVIDER_TOKEN_TTL
	// shortens it to watch the refresher at work.
	DefaultDevProviderTTL = time.Hour
	// minDevProviderTTL: shorter-lived tokens would be refreshed every few
	// seconds (at half their life), filling the log and the event stream.
	minDevProviderTTL = 10 * time.Second
)

// devProviderSecret is the dev provider's client secret, a development
// secret like the others, made when the dev provider is first asked for.
var devProviderSecret = devSecret{name: DevProviderSecretVar, prefix: "dev_client_"}

// preflightDevProvider checks NEXUS_DEV_PROVIDER and
// NEXUS_DEV_PROVIDER_TOKEN_TTL and binds the dev provider's address (not
// one in seen, the other services'). It returns no listener when the dev
// provider is off or anything is wrong, and then every problem.
func preflightDevProvider(env Lookup, seen map[string]string) (net.Listener, []error) {
	addr := envOr(env, DevProviderVar, "")
	ttl, hasTTL := env(DevProviderTTLVar)
	var errs []error
	if addr == "" {
		if hasTTL && ttl != "" {
			errs = append(errs, fmt.Errorf("%s is set but %s is not: the token lifetime is the development provider's; start it too, e.g. %s=127.0.0.1:18090",
				DevProviderTTLVar, DevProviderVar, DevProviderVar))
		}
		return nil, errs
	}
	if _, err := devProviderTTL(env); err != nil {
		errs = append(errs, err)
	}
	ip, err := devProviderAddr(addr)
	if err != nil {
		return nil, append(errs, err)
	}
	if other, dup := seen[addr]; dup {
		errs = append(errs, fmt.Errorf("%s and %s are both %s: give the development provider its own port", other, DevProviderVar, addr))
	}
	if list := envOr(env, egress.Variable, ""); list != "" {
		if nets, bad := egress.ParseNetworks(list); len(bad) == 0 && !nets.Contains(ip) {
			errs = append(errs, fmt.Errorf("%s=%s is not in %s=%s, so the broker would refuse to reach it: add %s/%d (or unset %s: make run opens loopback)",
				DevProviderVar, addr, egress.Variable, list, ip, ip.BitLen(), egress.Variable))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, []error{listenError(DevProviderVar, addr, err)}
	}
	return ln, nil
}

// devProviderAddr checks that addr is a loopback address with a fixed port:
// the provider has no password, so nothing but this machine may reach it,
// and its issuer, registered in admin, includes the port.
func devProviderAddr(addr string) (netip.Addr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s=%q: must be host:port, e.g. 127.0.0.1:18090", DevProviderVar, addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s=%q: the development provider signs in anyone without a password, so it listens on loopback only: "+
			"give a 127.0.0.0/8 or ::1 address, e.g. 127.0.0.1:%s", DevProviderVar, addr, port)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return netip.Addr{}, fmt.Errorf("%s=%q: needs a port number, 1 to 65535 (not 0: the provider's issuer, registered in admin, includes it)", DevProviderVar, addr)
	}
	return ip.Unmap(), nil
}

// devProviderTTL is NEXUS_DEV_PROVIDER_TOKEN_TTL, or its default.
func devProviderTTL(env Lookup) (time.Duration, error) {
	v := envOr(env, DevProviderTTLVar, "")
	if v == "" {
		return DefaultDevProviderTTL, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minDevProviderTTL {
		return 0, fmt.Errorf("%s=%q: must be a duration of at least %s, such as 90s or 5m", DevProviderTTLVar, v, minDevProviderTTL)
	}
	return d, nil
}

// StartDevProvider serves the development provider on ln (from Preflight)
// with the sign-in page, its access tokens living
// NEXUS_DEV_PROVIDER_TOKEN_TTL, and the broker registered as client
// DevProviderClientID with NEXUS_DEV_PROVIDER_CLIENT_SECRET. The client
// accepts the callback of every provider under PUBLIC_URL: which one admin
// gives the dev provider is known only once an operator registers it, and
// the broker is the only client.
func StartDevProvider(env Lookup, ln net.Listener) (*oidcprovider.Server, error) {
	ttl, err := devProviderTTL(env)
	if err != nil {
		return nil, err
	}
	secret, public := envOr(env, DevProviderSecretVar, ""), envOr(env, "PUBLIC_URL", "")
	if secret == "" || public == "" {
		return nil, errors.New("the development provider needs " + DevProviderSecretVar + " and PUBLIC_URL")
	}
	p, err := oidcprovider.New(oidcprovider.Options{Listener: ln, LoginPage: true, AccessTokenLifespan: ttl})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("development provider: %w", err)
	}
	err = p.AddClient(oidcprovider.Client{
		ID: DevProviderClientID, Secret: secret,
		RedirectURIPrefix: strings.TrimSuffix(public, "/") + messages.ProviderCallbackPath(""),
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("development provider: %w", err)
	}
	return p, nil
}
