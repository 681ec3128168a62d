package egress_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/telemetry"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestTracedRequestKeepsSecretsOut sends a request carrying a secret in its
// query, its Authorization header and its form body through the guard with
// tracing on, exported over OTLP to a receiver on loopback: the provider
// gets the whole request and no trace context, and the exported client span
// has the method, host and status but none of the secrets, nor a query.
func TestTracedRequestKeepsSecretsOut(t *testing.T) {
	const (
		querySecret  = "qs5d1c0e9b7a44"
		headerSecret = "hd8e2f4a6c1b55"
		bodySecret   = "bd3b7d9f1e2a66"
		userSecret   = "us9a4c2e7f1d77"
	)
	otlp := testkit.OTLP(t, "127.0.0.1:0")
	end, err := telemetry.Setup(context.Background(), config.Telemetry{TracesURL: otlp.URL + "/v1/traces", Sampler: "always_on"}, "egress-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = end(context.Background()) })

	var got *http.Request
	var gotBody string
	srv := serve(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, gotBody = r.Clone(context.Background()), string(b)
		w.Write([]byte(`{}`))
	})
	c := egress.New(egress.Options{Private: networks(t, loopback1)})
	withUser := strings.Replace(srv.URL, "http://", "http://client:"+userSecret+"@", 1)
	req, err := http.NewRequest(http.MethodPost, withUser+"/token?api_key="+querySecret+"#frag",
		strings.NewReader(url.Values{"refresh_token": {bodySecret}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+headerSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if got == nil || got.URL.Query().Get("api_key") != querySecret || got.Header.Get("Authorization") != "Bearer "+headerSecret || !strings.Contains(gotBody, bodySecret) {
		t.Fatalf("the provider did not get the request as sent: %v %v %q", got.URL, got.Header, gotBody)
	}
	for _, h := range []string{"Traceparent", "Tracestate", "Baggage"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("the provider was sent %s: %q", h, v)
		}
	}
	if err := end(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := otlp.Spans()
	if len(spans) != 1 {
		t.Fatalf("exported %d spans, want the request's one: %+v", len(spans), spans)
	}
	s := spans[0]
	host := strings.TrimPrefix(srv.URL, "http://")
	if s.Kind != "SPAN_KIND_CLIENT" || s.Service != "egress-test" || s.Name != "POST "+host ||
		s.Attributes["http.request.method"] != "POST" || s.Attributes["http.response.status_code"] != "200" {
		t.Fatalf("span = %+v", s)
	}
	t.Logf("client span %q: %v", s.Name, s.Attributes)
	if full := s.Attributes["url.full"]; full != srv.URL+"/token" {
		t.Errorf("url.full = %q, want the URL without its user, query and fragment", full)
	}
	for k, v := range s.Attributes {
		for _, secret := range []string{querySecret, headerSecret, bodySecret, userSecret} {
			if leak := testkit.Leak(k+"="+v, secret); leak != "" {
				t.Errorf("span attribute %s shows %q of a secret", k, leak)
			}
		}
	}
}
