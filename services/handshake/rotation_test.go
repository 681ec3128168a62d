package handshake_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func newStateKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestConsentBegunBeforeAStateKeyRotation: people are in the middle of
// consents when STATE_KEY is rotated. With the old key in
// STATE_KEYS_PREVIOUS they finish: the state the provider returns, the
// browser's binding cookie and the sealed flow were all made with the old
// key. A link opened only after the rotation works as well. Once the old
// key is dropped, a consent it began is refused as any unknown state is.
func TestConsentBegunBeforeAStateKeyRotation(t *testing.T) {
	e := newEnv(t)
	old := e.cfg.StateKey
	finish := func(b *http.Client, loc *url.URL) (*http.Response, string) {
		t.Helper()
		// The "oidc" test provider does not send iss (RFC 9207), so neither does this.
		return e.callback(b, url.Values{"code": {"the-code"}, "state": {loc.Query().Get("state")}})
	}

	// At the provider when the key changes: state, cookie, flow of the old key.
	atProvider := e.browser()
	first := e.mustBegin("oidc")
	loc := e.connect(atProvider, first.AuthURL)
	// Begun, the link not opened yet: only the flow is of the old key.
	notOpened := e.mustBegin("oidc")
	// A third one, still at the provider when the old key is dropped.
	late := e.browser()
	third := e.mustBegin("oidc")
	lateLoc := e.connect(late, third.AuthURL)

	e.restart(newStateKey(t), old)
	resp, body := finish(atProvider, loc)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnURL+"?connection_id="+first.ConnectionID+"&status=active" {
		t.Fatalf("a consent begun before the rotation: HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	b := e.browser()
	resp, body = finish(b, e.connect(b, notOpened.AuthURL))
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "status=active") {
		t.Fatalf("a link of the old key opened after the rotation: HTTP %d: %s", resp.StatusCode, body)
	}
	if _, _, n := e.fakes.counts(); n != 2 {
		t.Fatalf("%d code exchanges, want 2", n)
	}

	// The old key dropped: the last one is refused, nothing reaches the vault.
	e.restart(e.cfg.StateKey)
	resp, body = finish(late, lateLoc)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a consent of a dropped key: HTTP %d: %s", resp.StatusCode, body)
	}
	if _, _, n := e.fakes.counts(); n != 2 {
		t.Fatalf("a consent of a dropped key reached the vault (%d exchanges)", n)
	}
}

// TestStaticFormAcrossAStateKeyRotation: the hosted form is open in the
// browser (its CSRF token and cookie, its binding and its flow made with the
// old key) when STATE_KEY rotates; the submission goes through.
func TestStaticFormAcrossAStateKeyRotation(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rep, p := e.openForm(b, "db")
	e.restart(newStateKey(t), e.cfg.StateKey)
	values := url.Values{"username": {"alice"}, "password": {"pw-SECRET-1"}, "port": {"5432"}, "ratio": {"0.5"}, "sandbox": {"true"}}
	resp, body := e.post(b, p.Action, p.Token, values, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnURL+"?connection_id="+rep.ConnectionID+"&status=active" {
		t.Fatalf("a form of the old key submitted after the rotation: HTTP %d: %s", resp.StatusCode, body)
	}
	if n := e.fakes.storeCount(); n != 1 {
		t.Fatalf("vault store called %d times, want 1", n)
	}
}
