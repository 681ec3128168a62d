package system_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/telemetry"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// traceContext is a caller's span: a W3C traceparent and its ids.
type traceContext struct{ traceID, spanID, header string }

func newTraceContext(t *testing.T) traceContext {
	t.Helper()
	id := make([]byte, 24)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	tc := traceContext{traceID: hex.EncodeToString(id[:16]), spanID: hex.EncodeToString(id[16:])}
	tc.header = "00-" + tc.traceID + "-" + tc.spanID + "-01"
	return tc
}

// gatewayRequest sends body to subject as the Gateway does, with the
// caller's trace context in the traceparent header, and decodes the reply.
func gatewayRequest(t *testing.T, b *systemtest.Broker, subject string, tc traceContext, body, reply any) error {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(messages.Subject(messages.DefaultPrefix, subject))
	msg.Data = data
	msg.Header.Set(messages.HeaderAPIKey, gatewayKey)
	msg.Header.Set("traceparent", tc.header)
	resp, err := b.NC.RequestMsgWithContext(ctxT(t), msg)
	if err != nil {
		return err
	}
	return natsx.DecodeReply(resp, reply)
}

// consent runs a consent begun with the caller's trace context in a
// browser, and returns the connection with the codes and states the
// browser carried back from the provider.
func consent(t *testing.T, b *systemtest.Broker, tc traceContext) (id string, codes, states []string) {
	t.Helper()
	var begin messages.BeginReply
	if err := gatewayRequest(t, b, messages.SubjectHandshakeBegin, tc, messages.BeginRequest{
		Provider: "acme", WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return",
	}, &begin); err != nil {
		t.Fatalf("handshake.begin: %v", err)
	}
	browser := systemtest.NewBrowser()
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if q := req.URL.Query(); q.Get("code") != "" {
			codes, states = append(codes, q.Get("code")), append(states, q.Get("state"))
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}
	resp, err := browser.Get(begin.AuthURL)
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	resp.Body.Close()
	if q := resp.Request.URL.Query(); q.Get("status") != "active" || len(codes) == 0 {
		t.Fatalf("consent ended at %s with %d codes", resp.Request.URL.Redacted(), len(codes))
	}
	return begin.ConnectionID, codes, states
}

// spansOf are the spans of one trace.
func spansOf(spans []testkit.Span, traceID string) []testkit.Span {
	var out []testkit.Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// findSpan is the first span of kind named name (a prefix), or fails.
func findSpan(t *testing.T, spans []testkit.Span, kind, name string) testkit.Span {
	t.Helper()
	for _, s := range spans {
		if s.Kind == kind && strings.HasPrefix(s.Name, name) {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Kind+" "+s.Name)
	}
	t.Fatalf("no %s span %q in the trace; it has %v", kind, name, names)
	return testkit.Span{}
}

// TestTracing runs the broker with OTEL_EXPORTER_OTLP_ENDPOINT naming an
// OTLP receiver on loopback, and sends handshake.begin and a tokens.get that
// must refresh (min_valid_seconds beyond the token's life) with a caller's
// traceparent. Each request's trace, under the caller's trace id and span,
// crosses the services: begin in the handshake, its calls to admin and the
// vault and their handling there; tokens.get in the vault and its HTTP
// client span to the provider's token endpoint. No span attribute anywhere
// holds a token, a code, a state, a secret or a key.
func TestTracing(t *testing.T) {
	otlp := testkit.OTLP(t, "127.0.0.1:0")
	b := startBrokerEnv(t, oidcprovider.Options{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.URL})
	ctx := ctxT(t)
	if !telemetry.Enabled() {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT is set and tracing is off")
	}
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	begun := newTraceContext(t)
	id, codes, states := consent(t, b, begun)

	read := newTraceContext(t)
	var cred messages.Credential
	if err := gatewayRequest(t, b, messages.SubjectTokensGet, read, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1", MinValidSeconds: ptr(3600)}, &cred); err != nil {
		t.Fatalf("tokens.get: %v", err)
	}
	if b.Provider.RefreshGrants() != 1 {
		t.Fatalf("tokens.get made %d refreshes at the provider, want 1", b.Provider.RefreshGrants())
	}
	b.Close() // the services stop, then the last spans are sent
	all := otlp.Spans()

	trace := spansOf(all, begun.traceID)
	hs := findSpan(t, trace, "SPAN_KIND_SERVER", "nexus.v1.handshake.begin")
	if hs.ParentSpanID != begun.spanID || hs.Service != "nexus" || hs.Attributes["nexus.service"] != "handshake" || hs.Attributes["nexus.principal"] != "gateway" {
		t.Fatalf("handshake.begin span = %+v, want the caller's span as parent", hs)
	}
	for _, call := range []struct{ subject, service string }{
		{"nexus.v1.admin.providers.get", "admin"},
		{"nexus.v1.vault.connections.create", "vault"},
	} {
		client := findSpan(t, trace, "SPAN_KIND_CLIENT", call.subject)
		server := findSpan(t, trace, "SPAN_KIND_SERVER", call.subject)
		if client.ParentSpanID != hs.SpanID || server.ParentSpanID != client.SpanID || server.Attributes["nexus.service"] != call.service {
			t.Errorf("%s: client %+v, server %+v: want handshake.begin -> request -> %s", call.subject, client, server, call.service)
		}
	}

	trace = spansOf(all, read.traceID)
	vault := findSpan(t, trace, "SPAN_KIND_SERVER", "nexus.v1.tokens.get")
	if vault.ParentSpanID != read.spanID || vault.Attributes["nexus.service"] != "vault" || vault.StatusCode == "STATUS_CODE_ERROR" {
		t.Fatalf("tokens.get span = %+v, want the caller's span as parent", vault)
	}
	token := findSpan(t, trace, "SPAN_KIND_CLIENT", "POST ")
	if token.ParentSpanID != vault.SpanID || token.Attributes["url.full"] != b.Provider.Issuer()+"/token" || token.Attributes["http.response.status_code"] != "200" {
		t.Fatalf("provider call span = %+v, want POST to the token endpoint under tokens.get", token)
	}

	issued := b.Provider.Issued()
	secrets := append(append(append(append(issued.AccessTokens, issued.RefreshTokens...), issued.IDTokens...), codes...), states...)
	secrets = append(secrets, systemtest.ClientSecret, gatewayKey, rotatedKey, b.OperatorKey, b.Env["ENCRYPTION_KEY"], b.Env["STATE_KEY"],
		b.Env["HANDSHAKE_SERVICE_KEY"], b.Env["ADMIN_SERVICE_KEY"], b.Env["REFRESHER_SERVICE_KEY"])
	for _, a := range b.Provider.AuthorizeRequests() {
		secrets = append(secrets, a.Get("nonce"), a.Get("code_challenge"))
	}
	for _, s := range all {
		for k, v := range s.Attributes {
			for i, secret := range secrets {
				if secret == "" {
					continue
				}
				if strings.Contains(v, secret) || strings.Contains(v, url.QueryEscape(secret)) {
					t.Errorf("span %s %q: attribute %s holds secret #%d of the list", s.Kind, s.Name, k, i)
				}
			}
		}
	}
	// And anywhere else in what was exported (span names, events, status
	// messages, resources): protobuf carries strings as they are.
	bodies := otlp.Bodies()
	if len(bodies) == 0 {
		t.Fatal("no export was received")
	}
	for n, body := range bodies {
		for i, secret := range secrets {
			if secret != "" && (bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte(url.QueryEscape(secret)))) {
				t.Errorf("export %d holds secret #%d of the list", n, i)
			}
		}
	}
	t.Logf("%d spans exported; the tokens.get trace: %d", len(all), len(trace))
}

// TestTracingOff runs the same requests with no OTEL_* variable while an
// OTLP receiver listens on the default endpoint (127.0.0.1:4318): tracing
// stays off in the process and nothing is exported.
func TestTracingOff(t *testing.T) {
	otlp := testkit.OTLP(t, "127.0.0.1:4318")
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if telemetry.Enabled() {
		t.Fatal("tracing is on with no OTEL_* variable set")
	}
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	id, _, _ := consent(t, b, newTraceContext(t))
	var cred messages.Credential
	if err := gatewayRequest(t, b, messages.SubjectTokensGet, newTraceContext(t), messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1", MinValidSeconds: ptr(3600)}, &cred); err != nil {
		t.Fatalf("tokens.get: %v", err)
	}
	if b.Provider.RefreshGrants() != 1 {
		t.Fatalf("tokens.get made %d refreshes at the provider, want 1", b.Provider.RefreshGrants())
	}
	b.Close()
	if n := otlp.Exports(); n != 0 {
		t.Fatalf("%d exports reached the default OTLP endpoint with tracing off", n)
	}
}
