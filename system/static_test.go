package system_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestStaticCredentialsEndToEnd registers an API-key provider with a
// verification request and an AWS provider, has a user type credentials in
// the hosted form, and reads them back as the Gateway does, while a spy on
// every subject and a scan of every table look for the secrets.
func TestStaticCredentialsEndToEnd(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)

	const apiKey = "sk-live-4f9a0c7e1b2d3a5968"
	var verified atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		verified.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer api.Close()

	var seen []string
	ch := make(chan string, 4096)
	// The test server's observer sees everything, inboxes included.
	spy := testkit.ConnAs(t, b.Infra.NATSURL, testkit.Observer, b.Infra.NATSPasswords[testkit.Observer])
	sub, err := spy.Subscribe(">", func(m *nats.Msg) { ch <- m.Subject + " " + string(m.Data) })
	if err != nil {
		t.Fatal(err)
	}

	schema := json.RawMessage(`{"type":"object","required":["api_key"],"properties":{
		"api_key":{"type":"string","title":"API key","writeOnly":true,"minLength":8},
		"note":{"type":"string","title":"Label"}}}`)
	var openai messages.Provider
	if err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, messages.Provider{
		Name: "openai", Aliases: []string{"openai-prod"}, Type: messages.ProviderStatic, CredentialSchema: schema,
		Strategy:     &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "Authorization", "prefix": "Bearer "}},
		Verification: &messages.Verification{URL: api.URL + "/v1/models"},
	}, &openai); err != nil {
		t.Fatalf("register static provider: %v", err)
	}
	awsSchema := json.RawMessage(`{"type":"object","required":["access_key_id","secret_access_key"],"properties":{
		"access_key_id":{"type":"string","title":"Access key ID","writeOnly":false},
		"secret_access_key":{"type":"string","title":"Secret access key"},
		"session_token":{"type":"string","title":"Session token"}}}`)
	if err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, messages.Provider{
		Name: "aws", Type: messages.ProviderStatic, CredentialSchema: awsSchema,
		Strategy: &messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}},
	}, nil); err != nil {
		t.Fatalf("register aws provider: %v", err)
	}

	connect := func(t *testing.T, provider string, fields url.Values) (url.Values, string) {
		t.Helper()
		begin, err := b.Begin(ctx, provider, "ws-1")
		if err != nil {
			t.Fatal(err)
		}
		resp, body, err := systemtest.FillForm(systemtest.NewBrowser(), begin.AuthURL, fields)
		if err != nil {
			t.Fatalf("form: %v\n%s", err, body)
		}
		return resp.Request.URL.Query(), body
	}

	// Invalid input is shown next to the field; nothing is stored.
	begin, err := b.Begin(ctx, "openai-prod", "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err := systemtest.FillForm(systemtest.NewBrowser(), begin.AuthURL, url.Values{"api_key": {"short"}})
	if err != nil || resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, "short") {
		t.Fatalf("invalid input: %v HTTP %d (the rejected secret must not be echoed)", err, resp.StatusCode)
	}

	q, _ := connect(t, "openai-prod", url.Values{"api_key": {apiKey}, "note": {"team bot"}})
	if q.Get("status") != "active" {
		t.Fatalf("static consent landed with %v", q)
	}
	if verified.Load() != 1 {
		t.Fatalf("the verification request ran %d times, want 1", verified.Load())
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: q.Get("connection_id")}, &cred); err != nil {
		t.Fatal(err)
	}
	if cred.AuthType != messages.AuthStatic || cred.Strategy.Type != messages.StrategyHeader || cred.Strategy.Config["prefix"] != "Bearer " ||
		len(cred.Credentials) != 1 || cred.Credentials["api_key"] != apiKey || cred.AccessToken != "" {
		t.Fatalf("credential = %+v (only the strategy's field, never the label)", cred)
	}

	if cred.Config["note"] != "team bot" {
		t.Fatalf("config = %v (the label is not secret and not applied)", cred.Config)
	}

	// Credentials the provider refuses: the form again, the consent pending.
	begin, err = b.Begin(ctx, "openai", "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err = systemtest.FillForm(systemtest.NewBrowser(), begin.AuthURL, url.Values{"api_key": {"sk-wrong-key-000"}})
	if err != nil || resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "These credentials were refused.") {
		t.Fatalf("refused credentials: %v HTTP %d", err, resp.StatusCode)
	}

	const awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	q, _ = connect(t, "aws", url.Values{"access_key_id": {"AKIAIOSFODNN7EXAMPLE"}, "secret_access_key": {awsSecret}})
	if q.Get("status") != "active" {
		t.Fatalf("aws consent landed with %v", q)
	}
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: q.Get("connection_id")}, &cred); err != nil {
		t.Fatal(err)
	}
	if cred.Strategy.Type != messages.StrategyAWSSigV4 || cred.Strategy.Config["region"] != "eu-west-1" ||
		cred.Credentials["secret_access_key"] != awsSecret || cred.Credentials["access_key_id"] != "AKIAIOSFODNN7EXAMPLE" {
		t.Fatalf("aws credential = %+v", cred)
	}
	if _, ok := cred.Credentials["session_token"]; ok {
		t.Fatal("an absent optional session token was returned")
	}
	err = b.Gateway.Request(ctx, messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: q.Get("connection_id")}, &cred)
	if !errors.Is(err, messages.ErrInvalidRequest) {
		t.Fatalf("tokens.refresh on static credentials: %v, want invalid_request", err)
	}

	// On the bus, a typed secret crosses once to the vault and then only in
	// tokens.get replies to the Gateway.
	_ = spy.Flush()
	time.Sleep(200 * time.Millisecond)
	_ = sub.Unsubscribe()
	close(ch)
	for m := range ch {
		seen = append(seen, m)
	}
	storeSubj := messages.Subject(messages.DefaultPrefix, messages.SubjectVaultStaticStore)
	for _, secret := range []string{apiKey, awsSecret} {
		stores := 0
		for _, m := range seen {
			if !strings.Contains(m, secret) {
				continue
			}
			subj, _, _ := strings.Cut(m, " ")
			switch {
			case subj == storeSubj:
				stores++
			case strings.HasPrefix(subj, "_INBOX."):
				// a reply: tokens.get to the Gateway
			default:
				t.Errorf("a static secret crossed NATS on %s", subj)
			}
		}
		if stores != 1 {
			t.Errorf("a static secret was sent to the vault %d times, want once", stores)
		}
	}

	// At rest, neither secret is stored in plaintext anywhere.
	conn, err := pgx.Connect(ctx, b.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select table_schema||'.'||table_name from information_schema.tables
		where table_schema in ('vault','admin') and table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rowsSeen := 0
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "select to_jsonb(t)::text from "+tbl+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range texts {
			rowsSeen++
			for _, secret := range []string{apiKey, awsSecret, "sk-wrong-key-000"} {
				if strings.Contains(r, secret) {
					t.Errorf("a static secret is stored in plaintext in %s", tbl)
				}
			}
		}
	}
	if rowsSeen < 5 {
		t.Fatalf("the scan read only %d rows", rowsSeen)
	}
}
