// Package egress is the one HTTP client for every request the broker makes
// to a provider-side URL: discovery documents, JWKS, token and revocation
// endpoints, static-credential verification requests. Those URLs come from
// whoever registers a provider, and the requests carry client secrets,
// refresh tokens and credentials a person just typed, so the client guards
// where they go:
//
//   - after DNS resolution, it refuses loopback, private, link-local,
//     shared (CGNAT), unique local, multicast, unspecified, documentation,
//     benchmarking and reserved addresses, their IPv4-mapped and NAT64
//     forms, and the cloud metadata endpoints, unless PROVIDER_PRIVATE_NETWORKS
//     lists the address's network (Networks);
//   - it connects to the very address it checked, so a DNS answer that
//     changes between the check and the connection (rebinding) cannot win;
//   - plain http goes only to the listed networks, https everywhere else;
//   - redirects are never followed, and no proxy is used (through a proxy
//     the guard would judge the proxy's address, not the provider's);
//   - every phase has a timeout (dial, TLS handshake, response header, the
//     whole request), and a response body is cut off with an error, never
//     silently truncated, past a cap.
//
// A refusal is decided before any connection is attempted, so it reads the
// same whether a port is open or closed: no port oracle.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Defaults for Options' zero values.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultDialTimeout         = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
	// DefaultMaxBody bounds a response body. Discovery documents, JWKS and
	// token responses are a few KiB; it stays below x/oauth2's own 1 MiB
	// limit, which truncates without an error.
	DefaultMaxBody = 512 << 10
	// maxHeaderBytes bounds the response header.
	maxHeaderBytes = 64 << 10
)

// Resolver looks host names up (*net.Resolver is one). Tests give their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Client. Zero values select the defaults.
type Options struct {
	// Private is PROVIDER_PRIVATE_NETWORKS: the refused networks opened to
	// providers, and the only ones plain http may reach.
	Private Networks
	// Timeout bounds a whole request, reading the body included
	// (DefaultTimeout); the dial and TLS handshake timeouts are never
	// longer.
	Timeout time.Duration
	// MaxBody bounds a response body (DefaultMaxBody).
	MaxBody int64
	// Resolver looks names up; nil means net.DefaultResolver.
	Resolver Resolver
	// RootCAs verifies servers' certificates; nil means the system's.
	RootCAs *x509.CertPool
}

// Client makes requests to provider-side URLs through the guard. Its
// methods are safe for concurrent use.
type Client struct {
	hc      *http.Client
	private Networks
}

// New returns a Client.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	g := &guard{private: o.Private, resolver: o.Resolver, dialTimeout: min(DefaultDialTimeout, o.Timeout)}
	transport := func(plainHTTP bool) *http.Transport {
		return &http.Transport{
			Proxy:                  nil,
			DialContext:            g.dialer(plainHTTP),
			TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    min(DefaultTLSHandshakeTimeout, o.Timeout),
			ResponseHeaderTimeout:  o.Timeout,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: maxHeaderBytes,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           100,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        90 * time.Second,
		}
	}
	rt := &roundTripper{https: transport(false), http: transport(true), maxBody: o.MaxBody}
	return &Client{
		private: o.Private,
		hc: &http.Client{
			Transport: newTracedTransport(rt),
			Timeout:   o.Timeout,
			// Never follow a redirect: Go would send the request again,
			// form and Authorization header included, to wherever the
			// Location points. The caller gets the 3xx response.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Do sends req through the guard.
func (c *Client) Do(req *http.Request) (*http.Response, error) { return c.hc.Do(req) }

// HTTP returns an *http.Client that goes through the guard, for libraries
// that take one (x/oauth2, go-oidc). Each call returns a copy: changing its
// fields does not change c.
func (c *Client) HTTP() *http.Client {
	hc := *c.hc
	return &hc
}

// Private is the networks c opens (PROVIDER_PRIVATE_NETWORKS).
func (c *Client) Private() Networks { return c.private }

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// roundTripper sends http and https requests through transports whose
// dialers know which scheme they serve, and caps every response body.
type roundTripper struct {
	https, http *http.Transport
	maxBody     int64
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	var t *http.Transport
	switch req.URL.Scheme {
	case "https":
		t = rt.https
	case "http":
		t = rt.http
	default:
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errors.New("egress: only http and https URLs are fetched")
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: rt.maxBody, limit: rt.maxBody, host: req.URL.Hostname()}
	return resp, nil
}

func (rt *roundTripper) CloseIdleConnections() {
	rt.https.CloseIdleConnections()
	rt.http.CloseIdleConnections()
}

// cappedBody reads at most limit bytes, and fails with a
// *BodyTooLargeError when there are more.
type cappedBody struct {
	rc          io.ReadCloser
	left, limit int64
	host        string
	err         error
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.left = 0
		b.err = &BodyTooLargeError{Host: b.host, Limit: b.limit}
		return n, b.err
	}
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// guard resolves, checks and dials.
type guard struct {
	private     Networks
	resolver    Resolver
	dialTimeout time.Duration
}

// dialer returns the DialContext of the transport for plain http or https.
// It resolves the host itself, checks every address, and dials only
// addresses that passed, by address: the name is not looked up again.
func (g *guard) dialer(plainHTTP bool) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		addrs, err := g.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		var (
			allowed []netip.Addr
			refusal error
		)
		for _, a := range addrs {
			if err := g.private.Check(host, a, plainHTTP); err != nil {
				if refusal == nil {
					refusal = err
				}
				continue
			}
			allowed = append(allowed, normalize(a))
		}
		if len(allowed) == 0 {
			if refusal == nil {
				refusal = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
			}
			return nil, refusal
		}
		var last error
		for _, a := range allowed {
			d := net.Dialer{
				Timeout: g.dialTimeout,
				// The last word, on the address the socket is about to
				// connect to, whatever path led here.
				Control: func(_, addr string, _ syscall.RawConn) error {
					ap, err := netip.ParseAddrPort(addr)
					if err != nil {
						return err
					}
					return g.private.Check(host, ap.Addr(), plainHTTP)
				},
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				return conn, nil
			}
			last = err
			if ctx.Err() != nil {
				break
			}
		}
		return nil, last
	}
}

// resolve returns host's addresses: host itself when it is an IP.
func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return g.resolver.LookupNetIP(ctx, "ip", host)
}
