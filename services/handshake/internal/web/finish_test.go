package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// failRecorder stands in for the vault: it records the connections marked
// failed. The browser edge's other vault calls are not made here.
type failRecorder struct {
	mu    sync.Mutex
	fails []messages.VaultFailConnection
}

func (v *failRecorder) Exchange(context.Context, messages.VaultExchange) (messages.Connection, error) {
	return messages.Connection{}, errors.New("not called in this test")
}

func (v *failRecorder) StoreStatic(context.Context, messages.VaultStoreStatic) (messages.Connection, error) {
	return messages.Connection{}, errors.New("not called in this test")
}

func (v *failRecorder) FailConnection(_ context.Context, id string, reason messages.Reason) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fails = append(v.fails, messages.VaultFailConnection{ConnectionID: id, Reason: reason})
	return nil
}

// count is the value of a handshake counter for one result.
func count(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestVaultFailed(t *testing.T) {
	const (
		callbacks = "nexus_handshake_callbacks_total"
		forms     = "nexus_handshake_credential_forms_total"
	)
	tests := []struct {
		name      string
		door      string // "callback" or "form"
		err       error
		returnURL string
		wantCode  string
		wantLoc   string
		counter   string
		result    string
	}{
		{"callback, vault error", "callback", messages.Errorf(messages.CodeProviderError, "invalid_grant"), "https://app.example.com/cb",
			"provider_error", "https://app.example.com/cb?connection_id=conn-1&error=provider_error&status=failed", callbacks, "failed"},
		{"callback, wrapped vault error", "callback", fmt.Errorf("exchange: %w", messages.Errorf(messages.CodeNotActive, "gone")), "https://app.example.com/cb",
			"not_active", "https://app.example.com/cb?connection_id=conn-1&error=not_active&status=failed", callbacks, "failed"},
		{"callback, no answer", "callback", errors.New("nats: connection closed"), "https://app.example.com/cb",
			"unavailable", "https://app.example.com/cb?connection_id=conn-1&error=unavailable&status=failed", callbacks, "failed"},
		{"callback, unusable return_url", "callback", messages.ErrInternal, "%zz",
			"internal", "", callbacks, "rejected"},
		{"form, vault error", "form", messages.Errorf(messages.CodeInvalidRequest, "the provider did not accept the credentials"), "https://app.example.com/cb?tab=1",
			"invalid_request", "https://app.example.com/cb?tab=1&connection_id=conn-1&error=invalid_request&status=failed", forms, "failed"},
		{"form, no answer", "form", context.DeadlineExceeded, "https://app.example.com/cb",
			"unavailable", "https://app.example.com/cb?connection_id=conn-1&error=unavailable&status=failed", forms, "failed"},
		{"form, unusable return_url", "form", messages.ErrInternal, "%zz",
			"internal", "", forms, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := &failRecorder{}
			reg := prometheus.NewRegistry()
			h, err := New(Deps{Vault: vault, PublicURL: &url.URL{Scheme: "https", Host: "hs.example.com"}, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			back, reason := h.back, "the authorization code could not be redeemed"
			if tt.door == "form" {
				back, reason = h.formBack, "the credentials could not be stored"
			}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "https://hs.example.com/v1/callback", nil)
			h.vaultFailed(w, r, flow.Flow{ConnectionID: "conn-1", ReturnURL: tt.returnURL}, back, tt.err, reason, "vault call failed")

			want := messages.VaultFailConnection{ConnectionID: "conn-1", Reason: messages.Reason{Code: tt.wantCode, Message: reason + " (" + tt.wantCode + ")"}}
			if len(vault.fails) != 1 || vault.fails[0] != want {
				t.Errorf("marked failed: %+v, want %+v", vault.fails, want)
			}
			if tt.wantLoc == "" {
				if w.Code != http.StatusServiceUnavailable || w.Header().Get("Location") != "" {
					t.Errorf("HTTP %d, Location %q; want the unavailable page", w.Code, w.Header().Get("Location"))
				}
			} else if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.wantLoc {
				t.Errorf("HTTP %d, Location %q; want 303 to %q", w.Code, w.Header().Get("Location"), tt.wantLoc)
			}
			if n := count(t, reg, tt.counter, tt.result); n != 1 {
				t.Errorf("%s{result=%q} = %v, want 1", tt.counter, tt.result, n)
			}
			other := forms
			if tt.counter == forms {
				other = callbacks
			}
			for _, result := range []string{"active", "failed", "rejected", "refused"} {
				if n := count(t, reg, other, result); n != 0 {
					t.Errorf("%s{result=%q} = %v, want 0", other, result, n)
				}
			}
		})
	}
}

// silentVault fails its first misses calls to connections.fail with
// missErr (no answer, as from a vault killed mid-consent, when nil), then
// records them.
type silentVault struct {
	failRecorder
	misses  int
	missErr error
	calls   int
}

func (v *silentVault) FailConnection(ctx context.Context, id string, reason messages.Reason) error {
	v.mu.Lock()
	v.calls++
	miss := v.calls <= v.misses
	v.mu.Unlock()
	if miss && v.missErr != nil {
		return v.missErr
	}
	if miss {
		return fmt.Errorf("vault.connections.fail: %w", natsx.ErrNoAnswer)
	}
	return v.failRecorder.FailConnection(ctx, id, reason)
}

// TestFailRetriedWhileTheVaultDoesNotAnswer: the browser is told the
// consent failed; the vault, down at that moment or unable to write (its
// database failing over), is told too once it can mark it, so the
// connection does not stay pending. Nothing is retried past the link's
// expiry, nor after a refusal that is not unavailable.
func TestFailRetriedWhileTheVaultDoesNotAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		missErr error
		calls   int
	}{
		{"no answer", nil, 3},
		{"unavailable", messages.Errorf(messages.CodeUnavailable, "the vault's database did not answer; try again"), 3},
		{"another refusal", messages.Errorf(messages.CodeNotFound, "connection not found"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vault := &silentVault{misses: 2, missErr: tc.missErr}
			h, err := New(Deps{Vault: vault, PublicURL: &url.URL{Scheme: "https", Host: "hs.example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			f := flow.Flow{ConnectionID: "conn-1", ExpiresAt: time.Now().Add(time.Minute)}
			h.fail(f, "unavailable", "the authorization code could not be redeemed (unavailable)")
			if tc.calls == 1 {
				// Given time for a retry, it makes none.
				time.Sleep(failRetryBase + 500*time.Millisecond)
			}
			deadline := time.Now().Add(15 * time.Second)
			for tc.calls > 1 {
				vault.mu.Lock()
				n := len(vault.fails)
				vault.mu.Unlock()
				if n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the connection was never marked failed (%d calls)", vault.calls)
				}
				time.Sleep(50 * time.Millisecond)
			}
			h.Close()
			if vault.calls != tc.calls {
				t.Fatalf("calls %d, want %d", vault.calls, tc.calls)
			}
			if tc.calls > 1 && (vault.fails[0].ConnectionID != "conn-1" || vault.fails[0].Reason.Code != "unavailable") {
				t.Fatalf("fails %+v", vault.fails)
			}
		})
	}

	// A link already expired: no retry (the vault expires the connection).
	// Given time for several retries, it makes none.
	expired := &silentVault{misses: 100}
	h2, err := New(Deps{Vault: expired, PublicURL: &url.URL{Scheme: "https", Host: "hs.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*failRetryBase+500*time.Millisecond)
	defer cancel()
	h2.retryFail(ctx, flow.Flow{ConnectionID: "conn-2", ExpiresAt: time.Now().Add(-time.Second)}, messages.Reason{Code: "unavailable"})
	if expired.calls != 0 {
		t.Fatalf("calls after the link expired = %d, want none", expired.calls)
	}
}
