package vault_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
)

// expire makes the connection's access token expired, as time would.
func (e *env) expire(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), `update vault.connections set expires_at = now() - interval '1 minute',
		last_refreshed_at = now() - interval '1 hour' where id = $1`, id); err != nil {
		e.t.Fatal(err)
	}
}

// attentionEvents are the connection's attention_required events.
func (e *env) attentionEvents(id string) []messages.Event {
	var out []messages.Event
	for _, ev := range e.events(id) {
		if ev.Type == messages.EventAttentionRequired.FullType() {
			out = append(out, ev)
		}
	}
	return out
}

// TestRepeatedRefusalNeedsTheUser: a provider that answers every refresh
// with HTTP 400 invalid_request ("refresh token is invalid or has already
// been claimed") instead of invalid_grant. Refused the configured number of
// times in a row over the window, the connection needs its user, with the
// provider's code as the reason and one event; not before.
func TestRepeatedRefusalNeedsTheUser(t *testing.T) {
	t.Parallel()
	const claimed = `{"error":"invalid_request","error_description":"refresh token is invalid or has already been claimed"}`
	t.Run("three in a row over the window", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{configure: func(c *vault.Config) { c.Refusals = refresh.Refusals{Count: 3, Window: time.Millisecond} }})
		c := e.connect(workspace)
		for i := 1; i <= 3; i++ {
			e.backoffPassed(c.ConnectionID)
			e.op.FailTokenRequests(1, http.StatusBadRequest, nil, claimed)
			err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
			if i < 3 {
				wantCode(t, err, messages.ErrProviderError)
				if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
					t.Fatalf("after %d refusals: %s", i, got.Status)
				}
				time.Sleep(2 * time.Millisecond) // the window is a millisecond
				continue
			}
			wantCode(t, err, messages.ErrAttentionRequired)
		}
		got := e.get(c.ConnectionID)
		if got.Status != messages.StatusAttentionRequired || got.Attention == nil || got.Attention.Code != "invalid_request" ||
			strings.Contains(got.Attention.Message, "claimed") {
			t.Fatalf("connection = %s", mustJSON(t, got))
		}
		att := e.attentionEvents(c.ConnectionID)
		if len(att) != 1 || att[0].Reason == nil || att[0].Reason.Code != "invalid_request" {
			t.Fatalf("attention_required events = %s", mustJSON(t, att))
		}
	})
	t.Run("not before the window", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{configure: func(c *vault.Config) { c.Refusals = refresh.Refusals{Count: 3, Window: time.Hour} }})
		c := e.connect(workspace)
		for range 5 {
			e.backoffPassed(c.ConnectionID)
			e.op.FailTokenRequests(1, http.StatusBadRequest, nil, claimed)
			wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil), messages.ErrProviderError)
		}
		if got := e.get(c.ConnectionID); got.Status != messages.StatusActive || len(e.attentionEvents(c.ConnectionID)) != 0 {
			t.Fatalf("five refusals within the window: %s", got.Status)
		}
	})
	t.Run("a different refusal starts again; 429 and 5xx never count", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{configure: func(c *vault.Config) { c.Refusals = refresh.Refusals{Count: 2, Window: time.Millisecond} }})
		c := e.connect(workspace)
		for _, f := range []struct {
			status int
			body   string
		}{
			{400, claimed}, {429, `{"error":"slow_down"}`}, {503, ``}, {400, `{"error":"invalid_scope"}`}, {500, `{"error":"server_error"}`}, {400, claimed},
		} {
			e.backoffPassed(c.ConnectionID)
			time.Sleep(2 * time.Millisecond)
			e.op.FailTokenRequests(1, f.status, nil, f.body)
			_ = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
			if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
				t.Fatalf("after HTTP %d %s: %s", f.status, f.body, got.Status)
			}
		}
	})
}

// TestExpiredTokenReadsAreNoRefreshStorm: while a provider fails, reads of
// an expired token do not each call it: one call, then the backoff answers
// with the same error until it has passed. A token still valid is served
// meanwhile, although it is within min_valid_seconds.
func TestExpiredTokenReadsAreNoRefreshStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	e.expire(c.ConnectionID)
	e.op.FailTokenRequests(100, http.StatusServiceUnavailable, nil, "")
	before := e.op.TokenRequests()
	for range 20 {
		_, err := e.token(c.ConnectionID, nil)
		wantCode(t, err, messages.ErrUnavailable)
	}
	if n := e.op.TokenRequests() - before; n != 1 {
		t.Fatalf("20 reads of an expired token called the provider %d times, want 1", n)
	}
	// The backoff passed: the provider is asked once more.
	e.backoffPassed(c.ConnectionID)
	_, err := e.token(c.ConnectionID, nil)
	wantCode(t, err, messages.ErrUnavailable)
	if n := e.op.TokenRequests() - before; n != 2 {
		t.Fatalf("after the backoff: %d calls, want 2", n)
	}

	// A token valid for ten more minutes, asked to last an hour: the
	// refresh fails, and the stored token is served.
	e.op.FailTokenRequests(0, 0, nil, "")
	d := e.connect(workspace)
	e.op.FailTokenRequests(100, http.StatusServiceUnavailable, nil, "")
	cred, err := e.token(d.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(context.Background(), `update vault.connections set expires_at = now() + interval '10 minutes',
		last_refreshed_at = now() - interval '1 hour' where id = $1`, d.ConnectionID); err != nil {
		t.Fatal(err)
	}
	got, err := e.token(d.ConnectionID, intp(3600))
	if err != nil || got.AccessToken != cred.AccessToken {
		t.Fatalf("a valid token while the provider fails: %v (same token: %v)", err, got.AccessToken == cred.AccessToken)
	}
	// A forced refresh is told the truth.
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: d.ConnectionID}, nil)
	wantCode(t, err, messages.ErrUnavailable)
}

// TestInvalidClientMarksTheProvider: invalid_client is the operator's to
// fix. The provider is marked misconfigured once, with a provider event;
// its connections stay active; a successful token request clears the mark
// with a recovered event, as does a changed registration.
func TestInvalidClientMarksTheProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c1, c2 := e.connect(workspace), e.connect(workspace)
	for _, c := range []messages.Connection{c1, c2} {
		e.op.FailTokenRequests(1, http.StatusUnauthorized, nil, `{"error":"invalid_client"}`)
		wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil), messages.ErrProviderError)
	}
	for _, c := range []messages.Connection{c1, c2} {
		if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
			t.Fatalf("invalid_client changed a connection: %s", got.Status)
		}
	}
	if got := e.providerEvents(); !slices.Equal(got, []string{"misconfigured"}) {
		t.Fatalf("provider events = %v, want one misconfigured", got)
	}
	var health messages.VaultClientsHealthReply
	e.mustCall(messages.SubjectVaultClientsHealth, messages.VaultClientsHealth{ProviderIDs: []string{providerID, "unknown"}}, &health)
	if h := health.Health[providerID]; h.Status != messages.ProviderMisconfigured || h.Code != "invalid_client" || h.Since == nil || len(health.Health) != 1 {
		t.Fatalf("health = %s", mustJSON(t, health))
	}
	var ev messages.ProviderEvent
	if err := e.pool.QueryRow(context.Background(), `select payload from vault.outbox where type = 'events.provider.misconfigured'`).Scan(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.ProviderID != providerID || ev.Provider != "test-provider" || ev.Type != "nexus.provider.misconfigured.v1" || ev.Reason == nil || ev.Reason.Code != "invalid_client" {
		t.Fatalf("event = %s", mustJSON(t, ev))
	}
	// A token request that succeeds again clears the mark.
	e.backoffPassed(c1.ConnectionID)
	if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c1.ConnectionID}, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.providerEvents(); !slices.Equal(got, []string{"misconfigured", "recovered"}) {
		t.Fatalf("after a success: provider events = %v", got)
	}
	// So does a changed registration, the operator's fix.
	e.backoffPassed(c2.ConnectionID)
	e.op.FailTokenRequests(1, http.StatusUnauthorized, nil, `{"error":"invalid_client"}`)
	wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c2.ConnectionID}, nil), messages.ErrProviderError)
	reply := e.putClient(e.registration("", nil))
	if reply.Health == nil || reply.Health.Status != messages.ProviderHealthy {
		t.Fatalf("put reply = %s", mustJSON(t, reply))
	}
	if got := e.providerEvents(); !slices.Equal(got, []string{"misconfigured", "recovered", "misconfigured", "recovered"}) {
		t.Fatalf("after a changed registration: provider events = %v", got)
	}
	// The changed registration ended the connection's backoff too.
	if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c2.ConnectionID}, nil); err != nil {
		t.Fatal(err)
	}
	// The relay hands provider events out apart from connection events.
	var claimed messages.OutboxClaimReply
	e.mustCall(messages.SubjectVaultOutboxClaim, messages.OutboxClaim{Owner: "relay", Limit: 100, LeaseSeconds: 60}, &claimed)
	if len(claimed.ProviderEvents) != 4 || claimed.ProviderEvents[0].Type != "nexus.provider.misconfigured.v1" {
		t.Fatalf("claimed provider events = %s", mustJSON(t, claimed.ProviderEvents))
	}
	for _, ev := range claimed.Events {
		if ev.ConnectionID == "" {
			t.Fatalf("a provider event among the connection events: %s", mustJSON(t, ev))
		}
	}
}

// providerEvents lists the provider events in the outbox, oldest first.
func (e *env) providerEvents() []string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `select type from vault.outbox where connection_id is null order by created_at, id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, strings.TrimPrefix(typ, messages.ProviderEventSubjectPrefix))
	}
	return out
}

// TestTemplateCodesArePermanent: Slack's refusals are {"ok": false, "error":
// "invalid_refresh_token"} on HTTP 200. With its quirks the code is
// permanent (attention_required at once, with that code); without them it
// would be a malformed answer.
func TestTemplateCodesArePermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	reg := e.registration("", &messages.Quirks{OKField: true, PermanentErrors: []string{"invalid_refresh_token", "token_revoked"}})
	e.putClient(reg)
	c := e.connect(workspace)
	e.op.FailTokenRequests(1, http.StatusOK, nil, `{"ok":false,"error":"invalid_refresh_token"}`)
	wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil), messages.ErrAttentionRequired)
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusAttentionRequired || got.Attention.Code != "invalid_refresh_token" || len(e.attentionEvents(c.ConnectionID)) != 1 {
		t.Fatalf("connection = %s", mustJSON(t, got))
	}
	// Bad quirks are refused, with the field named.
	reg.Quirks = &messages.Quirks{ExpiresInUnit: "minutes"}
	err := e.call(messages.SubjectVaultClientsPut, reg, nil)
	wantCode(t, err, messages.ErrInvalidRequest)
	if !strings.Contains(err.Error(), "expires_in_unit") {
		t.Fatalf("error = %v", err)
	}
}
