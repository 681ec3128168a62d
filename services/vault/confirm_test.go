package vault_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// confirmation is what the handshake gives the vault for a consent that
// waits for the Gateway: the value's hash and a deadline.
func confirmation(value string, by time.Time) *messages.Confirmation {
	sum := sha256.Sum256([]byte(value))
	return &messages.Confirmation{Hash: sum[:], By: by}
}

func (e *env) confirm(id, workspace, value string) (messages.Connection, error) {
	var c messages.Connection
	err := e.call(messages.SubjectConnectionsConfirm, messages.ConfirmRequest{ConnectionID: id, WorkspaceID: workspace, Confirmation: value}, &c)
	return c, err
}

// TestConfirmation: a consent begun with require_confirmation is held back
// until the Gateway brings the value the browser was given: wrong values,
// another workspace, replays and lateness change nothing but what they
// should.
func TestConfirmation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const value = "the-one-time-value-given-to-the-browser"

	c := e.create(workspace)
	a := e.authorize(c.Scopes)
	var got messages.Connection
	e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: c.ConnectionID, Code: a.code, CodeVerifier: a.verifier,
		RedirectURI: redirectURI, Nonce: a.nonce, Confirm: confirmation(value, time.Now().Add(10*time.Minute))}, &got)
	if got.Status != messages.StatusPending {
		t.Fatalf("after the exchange the connection is %s, want pending until confirmed", got.Status)
	}
	_, err := e.token(c.ConnectionID, nil)
	wantCode(t, err, messages.ErrNotActive)
	if evs := eventTypes(e.events(c.ConnectionID)); len(evs) != 1 {
		t.Fatalf("events before confirmation: %v, want only created", evs)
	}

	_, err = e.confirm(c.ConnectionID, workspace, "a-wrong-value")
	wantCode(t, err, messages.ErrForbidden)
	_, err = e.confirm(c.ConnectionID, "ws-other", value)
	wantCode(t, err, messages.ErrNotFound)
	if st := e.get(c.ConnectionID).Status; st != messages.StatusPending {
		t.Fatalf("refused confirmations moved the connection to %s", st)
	}

	got, err = e.confirm(c.ConnectionID, workspace, value)
	if err != nil || got.Status != messages.StatusActive {
		t.Fatalf("confirm: %+v, %v", got, err)
	}
	if cr, err := e.token(c.ConnectionID, nil); err != nil || cr.AccessToken == "" {
		t.Fatalf("tokens.get after confirmation: %v", err)
	}
	if evs := eventTypes(e.events(c.ConnectionID)); len(evs) != 2 || evs[1] != "active" {
		t.Fatalf("events: %v, want created, active", evs)
	}
	// A replayed value finds nothing to confirm.
	_, err = e.confirm(c.ConnectionID, workspace, value)
	wantCode(t, err, messages.ErrNotActive)
	if row := e.rawRow(c.ConnectionID); containsAny(row, `"staged_access_token":"`, `"confirmation_hash":"`) {
		t.Fatalf("staged secrets left after confirmation: %s", row)
	}

	// A re-consent that waits: the old token is served until it is confirmed.
	before, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: providerID, WorkspaceID: workspace, Scopes: c.Scopes}, nil)
	a = e.authorize(c.Scopes)
	e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: c.ConnectionID, Code: a.code, CodeVerifier: a.verifier,
		RedirectURI: redirectURI, Nonce: a.nonce, Confirm: confirmation("second-value-0123456789", time.Now().Add(10*time.Minute))}, nil)
	if cr, err := e.token(c.ConnectionID, intp(0)); err != nil || cr.AccessToken != before.AccessToken {
		t.Fatalf("an unconfirmed re-consent changed what is served: %v", err)
	}
	if _, err := e.confirm(c.ConnectionID, workspace, "second-value-0123456789"); err != nil {
		t.Fatal(err)
	}
	if cr, err := e.token(c.ConnectionID, intp(0)); err != nil || cr.AccessToken == before.AccessToken {
		t.Fatalf("the confirmed re-consent's token is not served: %v", err)
	}

	// Refusals of what a handshake may not ask.
	for _, bad := range []*messages.Confirmation{
		{Hash: []byte("short"), By: time.Now().Add(time.Minute)},
		confirmation(value, time.Now().Add(-time.Second)),
		confirmation(value, time.Now().Add(48*time.Hour)),
	} {
		other := e.create(workspace)
		err := e.call(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: other.ConnectionID, Code: "c", CodeVerifier: "v",
			RedirectURI: redirectURI, Confirm: bad}, nil)
		wantCode(t, err, messages.ErrInvalidRequest)
	}
}

// TestUnconfirmedConsentFails: a consent never confirmed by its deadline
// fails, its staged tokens wiped; a confirmation after the deadline is
// refused even before the sweep.
func TestUnconfirmedConsentFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.create(workspace)
	a := e.authorize(c.Scopes)
	e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: c.ConnectionID, Code: a.code, CodeVerifier: a.verifier,
		RedirectURI: redirectURI, Nonce: a.nonce, Confirm: confirmation("late-value-0123456789", time.Now().Add(1500*time.Millisecond))}, nil)
	time.Sleep(1600 * time.Millisecond)
	_, err := e.confirm(c.ConnectionID, workspace, "late-value-0123456789")
	wantCode(t, err, messages.ErrNotActive)
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusFailed {
		t.Fatalf("an unconfirmed consent past its deadline is %s, want failed", got.Status)
	}
	if row := e.rawRow(c.ConnectionID); containsAny(row, `"staged_access_token":"`, `"staged_refresh_token":"`, `"confirmation_hash":"`) {
		t.Fatalf("staged secrets left after the deadline: %s", row)
	}
	if evs := eventTypes(e.events(c.ConnectionID)); len(evs) != 2 || evs[1] != "failed" {
		t.Fatalf("events: %v, want created, failed", evs)
	}
	var reason string
	if err := e.pool.QueryRow(context.Background(), "select failure_code from vault.connections where id = $1", c.ConnectionID).Scan(&reason); err != nil || reason != "unconfirmed" {
		t.Fatalf("failure code %q (%v), want unconfirmed", reason, err)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
