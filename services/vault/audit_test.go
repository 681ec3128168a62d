package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// keyID is the id audit records give key (a fingerprint, never the key).
func keyID(key string) string {
	c, _ := apikey.NewSet().Add(apikey.Gateway, []string{key}).Identify(key)
	return c.KeyID
}

// auditList asks the vault for a page of its audit records, as admin does.
func (e *env) auditList(r messages.AuditListRequest) (messages.AuditListReply, error) {
	var out messages.AuditListReply
	err := e.call(messages.SubjectVaultAuditList, r, &out)
	return out, err
}

// audit pages through every record r selects, pages of limit r.Limit.
func (e *env) audit(r messages.AuditListRequest) []messages.AuditRecord {
	e.t.Helper()
	var all []messages.AuditRecord
	for range 1000 {
		page, err := e.auditList(r)
		if err != nil {
			e.t.Fatalf("audit.list %+v: %v", r, err)
		}
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		r.Cursor = page.NextCursor
	}
	e.t.Fatal("audit.list never ended")
	return nil
}

// all is every audit record, newest first; there must be n.
func (e *env) all(n int) []messages.AuditRecord {
	e.t.Helper()
	all := e.audit(messages.AuditListRequest{Limit: messages.MaxListLimit})
	if len(all) != n {
		e.t.Fatalf("%d audit records, want %d: %+v", len(all), n, all)
	}
	return all
}

// TestAuditCredentialReleases: a burst of tokens.get, from the cache or
// not, is one record per caller, connection, workspace and outcome, with
// the right count, written when asked for.
func TestAuditCredentialReleases(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	const n, workers = 400, 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range workers {
		wg.Go(func() {
			for range n / workers {
				if _, err := e.token(c.ConnectionID, nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Another key, in another workspace: not_found, a group of its own.
	for range 3 {
		err := raw(t, e, messages.SubjectTokensGet, []byte(mustJSON(t, messages.TokenRequest{ConnectionID: c.ConnectionID, WorkspaceID: "ws-other"})), workspaceKey)
		wantCode(t, err, messages.ErrNotFound)
	}
	recs := e.audit(messages.AuditListRequest{Action: messages.SubjectTokensGet, Target: c.ConnectionID})
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	byOutcome := map[string]messages.AuditRecord{}
	for _, r := range recs {
		byOutcome[r.Outcome] = r
	}
	ok, nf := byOutcome[messages.OutcomeOK], byOutcome[string(messages.CodeNotFound)]
	if ok.Count != n || ok.Principal != apikey.Gateway || ok.KeyID != keyID(apiKey) || ok.WorkspaceID != "" || ok.LastAt.Before(ok.At) || ok.LastAt.Equal(ok.At) {
		t.Errorf("the burst's record: %+v", ok)
	}
	if nf.Count != 3 || nf.KeyID != keyID(workspaceKey) || nf.WorkspaceID != "ws-other" {
		t.Errorf("the refusals' record: %+v", nf)
	}
	// A release after the write is a record of its own.
	if _, err := e.token(c.ConnectionID, nil); err != nil {
		t.Fatal(err)
	}
	all := e.all(2 + 2 + 1) // create, exchange; the two groups; the last release
	if all[0].Action != messages.SubjectTokensGet || all[0].Count != 1 || all[0].Outcome != messages.OutcomeOK {
		t.Fatalf("after one more release: %+v", all)
	}
}

// TestAuditConsentRevokeRefusals: every step of a consent, a refresh, a
// revocation and refused requests leave a record naming the principal and
// key; the consent's first step names the Gateway key that began it. No
// record holds a token, secret or key that the flows used.
func TestAuditConsentRevokeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID, WorkspaceID: workspace,
		Scopes: []string{"openid", "offline_access", "profile"}, Actor: keyID(apiKey)}, &c)
	a := e.authorize(c.Scopes)
	if _, err := e.exchange(c.ConnectionID, a); err != nil {
		t.Fatal(err)
	}
	cred, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refreshed messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &refreshed)
	if err := raw(t, e, messages.SubjectConnectionsRevoke, []byte(mustJSON(t, messages.ConnectionRef{ConnectionID: c.ConnectionID, WorkspaceID: workspace})), workspaceKey); err != nil {
		t.Fatal(err)
	}
	// Refused: a known key of another principal, an unknown key.
	wantCode(t, raw(t, e, messages.SubjectTokensGet, []byte(mustJSON(t, messages.TokenRequest{ConnectionID: c.ConnectionID})), refresherKey), messages.ErrForbidden)
	wantCode(t, raw(t, e, messages.SubjectConnectionsRevoke, []byte(mustJSON(t, messages.ConnectionRef{ConnectionID: c.ConnectionID})), "an-unknown-key-0123456789"), messages.ErrUnauthorized)
	// A failed consent, and static credentials brought to the wrong kind of
	// provider.
	failed := e.create(workspace)
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: failed.ConnectionID, Reason: messages.Reason{Code: "access_denied"}}, nil)
	const typed = "sk-typed-by-the-user-0123456789"
	if _, err := e.storeStatic(failed.ConnectionID, map[string]any{"api_key": typed}); err == nil {
		t.Fatal("static credentials stored for a failed OIDC connection")
	}

	e.all(10)
	recs := e.audit(messages.AuditListRequest{Target: c.ConnectionID})
	slices.Reverse(recs) // oldest first
	type want struct {
		action, principal, key, actor, ws, outcome string
	}
	got := make([]want, 0, len(recs))
	for _, r := range recs {
		got = append(got, want{r.Action, r.Principal, r.KeyID, r.ActorKeyID, r.WorkspaceID, r.Outcome})
	}
	wantRecs := []want{
		{messages.SubjectVaultConnectionsCreate, apikey.Handshake, keyID(handshakeKey), keyID(apiKey), workspace, "ok"},
		{messages.SubjectVaultExchange, apikey.Handshake, keyID(handshakeKey), "", workspace, "ok"},
		{messages.SubjectTokensGet, apikey.Gateway, keyID(apiKey), "", "", "ok"},
		{messages.SubjectTokensRefresh, apikey.Gateway, keyID(apiKey), "", "", "ok"},
		{messages.SubjectConnectionsRevoke, apikey.Gateway, keyID(workspaceKey), "", workspace, "ok"},
	}
	if !slices.Equal(got, wantRecs) {
		t.Errorf("the connection's records:\n got %+v\nwant %+v", got, wantRecs)
	}
	// Refusals come before the body is read: they name who, and what.
	refused := e.audit(messages.AuditListRequest{Principal: apikey.Refresher})
	if len(refused) != 1 || refused[0].Action != messages.SubjectTokensGet || refused[0].KeyID != keyID(refresherKey) || refused[0].Outcome != "forbidden" {
		t.Errorf("the refresher key's refused tokens.get: %+v", refused)
	}
	unknown := e.audit(messages.AuditListRequest{Action: messages.SubjectConnectionsRevoke, Since: recs[0].At})
	if !slices.ContainsFunc(unknown, func(r messages.AuditRecord) bool {
		return r.Principal == "" && r.KeyID == "" && r.Outcome == "unauthorized"
	}) {
		t.Errorf("no record of the unknown key's revoke: %+v", unknown)
	}
	// The Gateway key behind the consent finds it by its key id.
	if mine := e.audit(messages.AuditListRequest{KeyID: keyID(apiKey), Action: messages.SubjectVaultConnectionsCreate}); len(mine) != 1 || mine[0].Target != c.ConnectionID {
		t.Errorf("records of the Gateway key's consents: %+v", mine)
	}
	f := e.audit(messages.AuditListRequest{Target: failed.ConnectionID})
	if len(f) != 3 || f[0].Action != messages.SubjectVaultStaticStore || f[0].Outcome == messages.OutcomeOK || f[1].Action != messages.SubjectVaultConnectionsFail {
		t.Errorf("the failed consent's records: %+v", f)
	}

	// No secret of the flows, no key, in any record.
	var rows []string
	rs, err := e.pool.Query(context.Background(), "select a::text from vault.audit a")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, s)
	}
	if rs.Err() != nil || len(rows) < 9 {
		t.Fatalf("%d rows in vault.audit (%v)", len(rows), rs.Err())
	}
	issued := e.op.Issued()
	secrets := map[string]string{"client secret": secret, "code": a.code, "code verifier": a.verifier, "nonce": a.nonce,
		"access token": cred.AccessToken, "refreshed access token": refreshed.AccessToken, "static credential": typed}
	for i, tok := range slices.Concat(issued.AccessTokens, issued.RefreshTokens, issued.IDTokens) {
		secrets[fmt.Sprintf("issued token %d", i)] = tok
	}
	for _, k := range []string{apiKey, workspaceKey, handshakeKey, adminKey, refresherKey} {
		secrets["key "+k[:8]] = k
	}
	for what, s := range secrets {
		if s == "" {
			t.Fatalf("the test has no %s to look for", what)
		}
		for _, row := range rows {
			if strings.Contains(row, s) {
				t.Errorf("an audit row holds the %s: %s", what, row)
			}
		}
	}
}

// TestAuditList: vault.audit.list filters, pages newest first with a
// cursor, refuses what it cannot read, and serves admin alone.
func TestAuditList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c1 := e.connect(workspace)
	c2 := e.connect("ws-2")
	e.get(c1.ConnectionID)
	e.get(c2.ConnectionID)
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c2.ConnectionID}, nil)
	e.mustCall(messages.SubjectConnectionsList, messages.ListConnectionsRequest{WorkspaceID: workspace}, nil)

	all := e.all(8) // 2 x (create, exchange), 2 gets, a revoke, a list
	if !slices.IsSortedFunc(all, func(a, b messages.AuditRecord) int {
		if messages.AuditBefore(a, b) {
			return -1
		}
		return 1
	}) {
		t.Fatalf("records are not newest first: %+v", all)
	}
	if paged := e.audit(messages.AuditListRequest{Limit: 3}); !slices.EqualFunc(paged, all, func(a, b messages.AuditRecord) bool { return a.ID == b.ID }) {
		t.Fatalf("pages of 3 give %+v, want %+v", paged, all)
	}
	for _, tc := range []struct {
		name string
		req  messages.AuditListRequest
		keep func(messages.AuditRecord) bool
	}{
		{"principal", messages.AuditListRequest{Principal: apikey.Handshake}, func(r messages.AuditRecord) bool { return r.Principal == apikey.Handshake }},
		{"action", messages.AuditListRequest{Action: messages.SubjectConnectionsGet}, func(r messages.AuditRecord) bool { return r.Action == messages.SubjectConnectionsGet }},
		{"target", messages.AuditListRequest{Target: c2.ConnectionID}, func(r messages.AuditRecord) bool { return r.Target == c2.ConnectionID }},
		{"workspace", messages.AuditListRequest{WorkspaceID: "ws-2"}, func(r messages.AuditRecord) bool { return r.WorkspaceID == "ws-2" }},
		{"key", messages.AuditListRequest{KeyID: keyID(apiKey)}, func(r messages.AuditRecord) bool { return r.KeyID == keyID(apiKey) }},
		{"since", messages.AuditListRequest{Since: all[3].At}, func(r messages.AuditRecord) bool { return !r.At.Before(all[3].At) }},
		{"until", messages.AuditListRequest{Until: all[3].At}, func(r messages.AuditRecord) bool { return r.At.Before(all[3].At) }},
		{"combined", messages.AuditListRequest{Principal: apikey.Gateway, WorkspaceID: workspace, Limit: 1},
			func(r messages.AuditRecord) bool { return r.Principal == apikey.Gateway && r.WorkspaceID == workspace }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slices.DeleteFunc(slices.Clone(all), func(r messages.AuditRecord) bool { return !tc.keep(r) })
			got := e.audit(tc.req)
			if len(want) == 0 || !slices.EqualFunc(got, want, func(a, b messages.AuditRecord) bool { return a.ID == b.ID }) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
	for _, bad := range []messages.AuditListRequest{
		{Cursor: "not-a-cursor"},
		{Cursor: messages.EncodeAuditCursor(time.Now(), "not-an-id")},
		{Limit: -1},
		{Since: time.Now(), Until: time.Now().Add(-time.Hour)},
	} {
		if _, err := e.auditList(bad); !errors.Is(err, messages.ErrInvalidRequest) {
			t.Errorf("%+v: %v, want invalid_request", bad, err)
		}
	}
	for _, k := range []string{apiKey, handshakeKey, refresherKey} {
		wantCode(t, raw(t, e, messages.SubjectVaultAuditList, []byte(`{}`), k), messages.ErrForbidden)
	}
	// An unknown field is refused by name, as everywhere.
	err := raw(t, e, messages.SubjectVaultAuditList, []byte(`{"principle":"gateway"}`), adminKey)
	if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), "principle") {
		t.Errorf("a misspelt filter: %v", err)
	}
	var reply json.RawMessage
	if err := e.as[apikey.Admin].Request(context.Background(), messages.SubjectVaultAuditList, messages.AuditListRequest{Target: "nothing"}, &reply); err != nil || !strings.Contains(string(reply), `"records":[]`) {
		t.Errorf("an empty page: %s %v", reply, err)
	}
}
