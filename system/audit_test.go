package system_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestAuditEndToEnd: through the whole broker, on NATS with its
// permissions, an operator's audit.list (and GET /v1/audit) shows the
// provider's registration, the consent begun by the Gateway's key, the
// credential releases counted, the revocation and a refused request, from
// admin and the vault in one list, newest first; and no audit row anywhere
// holds a token, secret or key.
func TestAuditEndToEnd(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	p, err := b.RegisterOIDC(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.Connect(ctx, "acme", "ws-1")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	id := q.Get("connection_id")
	var cred messages.Credential
	for range 50 {
		if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, &cred); err != nil {
			t.Fatal(err)
		}
	}
	// A key the vault knows, of another principal, on the Gateway's subject.
	wrong := &natsx.Client{NC: b.NC, Prefix: messages.DefaultPrefix, APIKey: b.Env["HANDSHAKE_SERVICE_KEY"]}
	if err := wrong.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, nil); !errors.Is(err, messages.ErrForbidden) {
		t.Fatalf("a service key on tokens.get: %v", err)
	}
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: id, WorkspaceID: "ws-1"}, nil); err != nil {
		t.Fatal(err)
	}

	list := func(r messages.AuditListRequest) []messages.AuditRecord {
		t.Helper()
		var all []messages.AuditRecord
		for range 100 {
			var page messages.AuditListReply
			if err := b.Operator.Request(ctx, messages.SubjectAuditList, r, &page); err != nil {
				t.Fatalf("audit.list: %v", err)
			}
			all = append(all, page.Records...)
			if page.NextCursor == "" {
				return all
			}
			r.Cursor = page.NextCursor
		}
		t.Fatal("audit.list never ended")
		return nil
	}
	gw := keyID(gatewayKey)
	type row struct{ action, principal, key, actor, outcome string }
	var got []row
	for _, r := range slices.Backward(list(messages.AuditListRequest{Target: id})) {
		got = append(got, row{r.Action, r.Principal, r.KeyID, r.ActorKeyID, r.Outcome})
	}
	// The releases are one record, or two when the vault's periodic write
	// fell in the middle of them.
	got = slices.Compact(got)
	hs := keyID(b.Env["HANDSHAKE_SERVICE_KEY"])
	want := []row{
		{messages.SubjectVaultConnectionsCreate, apikey.Handshake, hs, gw, "ok"},
		{messages.SubjectVaultExchange, apikey.Handshake, hs, "", "ok"},
		{messages.SubjectTokensGet, apikey.Gateway, gw, "", "ok"},
		{messages.SubjectConnectionsRevoke, apikey.Gateway, gw, "", "ok"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the connection's records, oldest first:\n got %+v\nwant %+v", got, want)
	}
	var released int64
	rel := list(messages.AuditListRequest{Target: id, Action: messages.SubjectTokensGet})
	for _, r := range rel {
		released += r.Count
	}
	if len(rel) > 2 || released != 50 {
		t.Errorf("the releases: %+v", rel)
	}
	refused := list(messages.AuditListRequest{Principal: apikey.Handshake, Action: messages.SubjectTokensGet})
	if len(refused) != 1 || refused[0].Outcome != "forbidden" || refused[0].KeyID != hs {
		t.Errorf("the refused release: %+v", refused)
	}
	all := list(messages.AuditListRequest{})
	if last := all[len(all)-1]; last.Action != messages.SubjectProvidersCreate || last.Target != p.ID || last.ProviderName != "acme" ||
		last.Principal != apikey.Operator || last.KeyID != keyID(b.OperatorKey) || !slices.Contains(last.Changed, "client_secret") {
		t.Errorf("the oldest record is not the registration: %+v", last)
	}
	if paged := list(messages.AuditListRequest{Limit: 2}); !slices.EqualFunc(paged, all, func(a, b messages.AuditRecord) bool { return a.ID == b.ID }) {
		t.Errorf("pages of 2 differ from one page")
	}

	// The operator API shows the same.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.AdminURL+"/v1/audit?"+url.Values{"target": {id}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.OperatorKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var page messages.AuditListReply
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Records) != len(list(messages.AuditListRequest{Target: id})) {
		t.Errorf("GET /v1/audit: %d %s", resp.StatusCode, body)
	}

	// No secret, token or key in any audit row.
	conn, err := pgx.Connect(ctx, b.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select to_jsonb(a)::text from vault.audit a union all select to_jsonb(a)::text from admin.audit a")
	if err != nil {
		t.Fatal(err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(texts) < 6 {
		t.Fatalf("audit rows: %d %v", len(texts), err)
	}
	dump := strings.Join(texts, "\n")
	issued := b.Provider.Issued()
	secrets := slices.Concat(issued.AccessTokens, issued.RefreshTokens, issued.IDTokens,
		[]string{systemtest.ClientSecret, cred.AccessToken, gatewayKey, rotatedKey, b.OperatorKey,
			b.Env["HANDSHAKE_SERVICE_KEY"], b.Env["ADMIN_SERVICE_KEY"], b.Env["REFRESHER_SERVICE_KEY"]})
	for i, s := range secrets {
		if s == "" {
			t.Fatal("a secret to look for is empty")
		}
		if strings.Contains(dump, s) {
			t.Errorf("an audit row holds secret %d of the list (not printed)", i)
		}
	}
}

// keyID is the id audit records give key.
func keyID(key string) string {
	c, _ := apikey.NewSet().Add(apikey.Gateway, []string{key}).Identify(key)
	return c.KeyID
}
