package system_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestRateLimitsEndToEnd, with the real services: a workspace's third
// begin of the day is refused with a retry hint and leaves no connection;
// other workspaces and keys go on until their own limits; a consent begun
// before the limit completes after it; tokens.refresh is limited alike and
// tokens.get is not.
func TestRateLimitsEndToEnd(t *testing.T) {
	// Windows of a day, from the real clock: not across midnight UTC.
	if left := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)); left < 2*time.Minute {
		time.Sleep(left + time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	natsURL, passwords := testkit.NATSWithUsers(t)
	b, err := systemtest.Start(ctx, systemtest.Infra{
		NATSURL: natsURL, NATSPasswords: passwords,
		DatabaseURL: testkit.Postgres(t), RedisURL: testkit.Redis(t),
		EncryptionKey: testkit.Key32(t), StateKey: testkit.Key32(t),
		APIKeys: []string{gatewayKey, rotatedKey}, CrossWorkspaceKeys: []string{gatewayKey},
		Env: map[string]string{
			"BEGIN_RATE_PER_KEY": "3/24h", "BEGIN_RATE_PER_WORKSPACE": "2/24h",
			"TOKENS_REFRESH_RATE_PER_KEY": "0", "TOKENS_REFRESH_RATE_PER_WORKSPACE": "1/24h",
		},
	}, oidcprovider.Options{})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	other := &natsx.Client{NC: b.NC, Prefix: messages.DefaultPrefix, APIKey: rotatedKey}
	begin := func(c *natsx.Client, ws string) error {
		var out messages.BeginReply
		return c.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{Provider: "acme", WorkspaceID: ws, ReturnURL: b.Agent.URL + "/return"}, &out)
	}
	limited := func(err error, scope string) {
		t.Helper()
		var me *messages.Error
		if !errors.As(err, &me) || me.Code != messages.CodeRateLimited || me.RetryAfterSeconds < 1 || me.RetryAfterSeconds > 86400 || !strings.Contains(me.Message, "this "+scope) {
			t.Fatalf("error = %#v, want rate_limited for this %s with a retry hint", err, scope)
		}
	}

	first, err := b.Begin(ctx, "acme", "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := begin(b.Gateway, "ws-1"); err != nil {
		t.Fatal(err)
	}
	limited(begin(b.Gateway, "ws-1"), "workspace")
	var list messages.ListConnectionsReply
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsList, messages.ListConnectionsRequest{WorkspaceID: "ws-1"}, &list); err != nil || len(list.Connections) != 2 {
		t.Fatalf("ws-1 has %d connections (%v), want the 2 begun", len(list.Connections), err)
	}
	limited(begin(other, "ws-1"), "workspace")
	if err := begin(other, "ws-2"); err != nil {
		t.Fatalf("another key, another workspace: %v", err)
	}
	if err := begin(b.Gateway, "ws-3"); err != nil {
		t.Fatalf("the key's third: %v", err)
	}
	limited(begin(b.Gateway, "ws-4"), "key")

	// The consent begun first finishes in the browser.
	resp, err := systemtest.NewBrowser().Get(first.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if q := resp.Request.URL.Query(); resp.Request.URL.Path != "/return" || q.Get("status") != "active" || q.Get("connection_id") != first.ConnectionID {
		t.Fatalf("the consent begun before the limit ended at %s: %s", resp.Request.URL, body)
	}

	ref := messages.TokenRequest{ConnectionID: first.ConnectionID, WorkspaceID: "ws-1"}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensRefresh, ref, &cred); err != nil {
		t.Fatal(err)
	}
	var me *messages.Error
	if err := b.Gateway.Request(ctx, messages.SubjectTokensRefresh, ref, &cred); !errors.As(err, &me) || me.Code != messages.CodeRateLimited || me.RetryAfterSeconds < 1 {
		t.Fatalf("second refresh: %v, want rate_limited", err)
	}
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, ref, &cred); err != nil || cred.AccessToken == "" {
		t.Fatalf("tokens.get under a refresh limit: %v", err)
	}

	resp, err = http.Get("http://" + b.Sys.Listeners["handshake-internal"].Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`nexus_rate_limited_total{endpoint="handshake.begin",scope="workspace"} 2`, `nexus_rate_limited_total{endpoint="handshake.begin",scope="key"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("handshake metrics have no %s", want)
		}
	}
}
