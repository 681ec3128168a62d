package egress

import (
	"context"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/nexus-broker/nexus/shared/telemetry"
)

// tracedTransport makes each request to a provider a client span (otelhttp)
// while tracing is on. What the span may hold is narrowed first, since these
// requests carry secrets: otelhttp records the whole URL, so it is shown the
// request without its query and fragment (a static credential can travel
// as a query parameter) and the request sent is the original one; it
// records no header and no body. No trace context goes to the provider: the
// broker's trace ids are not a third party's business.
type tracedTransport struct {
	base   http.RoundTripper
	traced http.RoundTripper
}

func newTracedTransport(base http.RoundTripper) *tracedTransport {
	return &tracedTransport{
		base: base,
		traced: otelhttp.NewTransport(sendOriginal{base},
			otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Host })),
	}
}

// originalURL is the context key of the URL a request is really sent to.
type originalURL struct{}

func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !telemetry.Enabled() {
		return t.base.RoundTrip(req)
	}
	shown := req.Clone(context.WithValue(req.Context(), originalURL{}, req.URL))
	shown.URL.RawQuery, shown.URL.ForceQuery, shown.URL.Fragment, shown.URL.RawFragment, shown.URL.User = "", false, "", "", nil
	return t.traced.RoundTrip(shown)
}

func (t *tracedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// sendOriginal, below otelhttp, puts the request's own URL back.
type sendOriginal struct{ base http.RoundTripper }

func (s sendOriginal) RoundTrip(req *http.Request) (*http.Response, error) {
	if u, ok := req.Context().Value(originalURL{}).(*url.URL); ok {
		req = req.Clone(req.Context())
		req.URL = u
	}
	return s.base.RoundTrip(req)
}
