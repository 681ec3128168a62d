package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// secondKey is the other operator key setup configures.
const secondKey = "second-key-0123456789"

// keyID is the id audit records give key (a fingerprint, never the key).
func keyID(key string) string {
	c, _ := apikey.NewSet().Add(apikey.Operator, []string{key}).Identify(key)
	return c.KeyID
}

// auditAll pages through audit.list on NATS, pages of r.Limit.
func (e *env) auditAll(r messages.AuditListRequest) []messages.AuditRecord {
	e.t.Helper()
	var all []messages.AuditRecord
	for range 1000 {
		var page messages.AuditListReply
		if err := e.request(messages.SubjectAuditList, r, &page); err != nil {
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

func ids(recs []messages.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// TestAuditChanges: every change to a provider, on NATS or HTTP, leaves a
// record with the operator's principal and key id, the provider's id and
// name, and the names of the fields it changed; a new client secret shows
// as client_secret and nowhere as its value; a change that fails leaves
// none.
func TestAuditChanges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const createSecret, rotatedSecret = "gh-secret-at-create-0123", "gh-secret-rotated-4567"
	p := e.create(oauth2Provider("github", createSecret))
	if status, body := e.do(http.MethodPatch, "/v1/providers/github", "application/merge-patch+json", "Bearer "+secondKey,
		[]byte(`{"client_secret":"`+rotatedSecret+`","scopes":["repo","user"]}`)); status != http.StatusOK {
		t.Fatalf("update over HTTP: %d %s", status, body)
	}
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "github", Patch: json.RawMessage(`{"aliases":["gh"]}`)}, nil); err != nil {
		t.Fatal(err)
	}
	// A change the vault refuses is rolled back, its record with it.
	e.vault.failPuts(messages.Errorf(messages.CodeUnavailable, "the vault is away"))
	if err := e.request(messages.SubjectProvidersCreate, oauth2Provider("gitlab", "gl-secret-0123"), nil); err == nil {
		t.Fatal("a create the vault refused succeeded")
	}
	e.vault.failPuts(nil)
	if status, body := e.api(http.MethodDelete, "/v1/providers/gh", nil); status != http.StatusOK {
		t.Fatalf("delete: %d %s", status, body)
	}

	recs := e.auditAll(messages.AuditListRequest{})
	type want struct {
		action, key, target, name string
		changed                   []string
	}
	wantRecs := []want{
		{messages.SubjectProvidersDelete, keyID(apiKey), p.ID, "github", nil},
		{messages.SubjectProvidersUpdate, keyID(apiKey), p.ID, "github", []string{"aliases"}},
		{messages.SubjectProvidersUpdate, keyID(secondKey), p.ID, "github", []string{"scopes", "client_secret"}},
		{messages.SubjectProvidersCreate, keyID(apiKey), p.ID, "github", []string{"name", "type", "issuer", "authorization_endpoint", "token_endpoint",
			"client_id", "client_auth_method", "scopes", "authorization_params", "client_secret"}},
	}
	if len(recs) != len(wantRecs) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(wantRecs), recs)
	}
	for i, w := range wantRecs {
		r := recs[i]
		if r.Action != w.action || r.Principal != apikey.Operator || r.KeyID != w.key || r.Target != w.target || r.ProviderName != w.name ||
			!slices.Equal(r.Changed, w.changed) || r.Outcome != messages.OutcomeOK || r.Count != 1 || !r.LastAt.Equal(r.At) || r.ID == "" {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
	// Found by the provider's name as by its id.
	if byName := e.auditAll(messages.AuditListRequest{Target: "github"}); len(byName) != 4 {
		t.Errorf("records of github by name: %d", len(byName))
	}

	// No secret nor key in any table of schema admin, nor in any reply.
	dump := e.dumpAdminSchema()
	if !strings.Contains(dump, "audit: ") || !strings.Contains(dump, "client_secret") {
		t.Fatalf("the dump does not show the audit table: %s", dump)
	}
	for _, s := range []string{createSecret, rotatedSecret, "gl-secret-0123", apiKey, secondKey, adminKey, handshakeKey} {
		if strings.Contains(dump, s) {
			t.Errorf("schema admin holds %.12s...", s)
		}
		for _, reply := range e.replies {
			if strings.Contains(string(reply), s) {
				t.Errorf("a reply holds %.12s...: %s", s, reply)
			}
		}
	}
}

// TestAuditListMerges: audit.list (NATS) and GET /v1/audit merge admin's
// records with the vault's, newest first, ties by id, with one cursor
// through both; filters apply to both; a vault that does not answer fails
// the request rather than give half the log.
func TestAuditListMerges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, name := range []string{"alpha", "beta", "gamma"} {
		e.create(oauth2Provider(name, "secret-"+name))
		time.Sleep(2 * time.Millisecond) // distinct times, so that the vault's can go between them
	}
	own := e.auditAll(messages.AuditListRequest{}) // gamma, beta, alpha
	if len(own) != 3 {
		t.Fatalf("admin's records: %+v", own)
	}
	alpha, beta, gamma := own[2], own[1], own[0]
	gw := keyID("a-gateway-key-0123456789")
	vrec := func(i int, at time.Time, action, target, ws string) messages.AuditRecord {
		return messages.AuditRecord{ID: fmt.Sprintf("00000000-0000-7000-8000-%012x", i), At: at.UTC(), LastAt: at.UTC(), Count: int64(i + 1),
			Principal: apikey.Gateway, KeyID: gw, Action: action, Target: target, WorkspaceID: ws, Outcome: messages.OutcomeOK}
	}
	mid := func(a, b time.Time) time.Time { return a.Add(b.Sub(a) / 2).Truncate(time.Microsecond) }
	vault := []messages.AuditRecord{
		vrec(0, alpha.At.Add(-time.Second), messages.SubjectTokensGet, "conn-1", "ws-1"),
		vrec(1, mid(alpha.At, beta.At), messages.SubjectConnectionsRevoke, "conn-1", "ws-1"),
		vrec(2, beta.At, messages.SubjectConnectionsGet, "conn-2", "ws-2"), // the same time as beta's: the id decides
		vrec(3, gamma.At.Add(time.Second), messages.SubjectTokensGet, "conn-2", "ws-2"),
		{ID: "ffffffff-0000-7000-8000-000000000000", At: mid(beta.At, gamma.At), LastAt: mid(beta.At, gamma.At), Count: 1,
			Principal: apikey.Handshake, KeyID: keyID(handshakeKey), ActorKeyID: gw, Action: messages.SubjectVaultConnectionsCreate,
			Target: "conn-3", WorkspaceID: "ws-1", Outcome: messages.OutcomeOK},
	}
	e.vault.mu.Lock()
	e.vault.audit = vault
	e.vault.mu.Unlock()

	union := slices.Concat(own, vault)
	slices.SortFunc(union, func(a, b messages.AuditRecord) int {
		if messages.AuditBefore(a, b) {
			return -1
		}
		return 1
	})
	if all := e.auditAll(messages.AuditListRequest{}); !slices.Equal(ids(all), ids(union)) {
		t.Fatalf("one page:\n got %v\nwant %v", ids(all), ids(union))
	}
	for _, limit := range []int{1, 2, 3} {
		if paged := e.auditAll(messages.AuditListRequest{Limit: limit}); !slices.Equal(ids(paged), ids(union)) {
			t.Errorf("pages of %d:\n got %v\nwant %v", limit, ids(paged), ids(union))
		}
	}
	for _, tc := range []struct {
		name string
		req  messages.AuditListRequest
		keep func(messages.AuditRecord) bool
	}{
		{"principal", messages.AuditListRequest{Principal: apikey.Operator}, func(r messages.AuditRecord) bool { return r.Principal == apikey.Operator }},
		{"workspace", messages.AuditListRequest{WorkspaceID: "ws-1"}, func(r messages.AuditRecord) bool { return r.WorkspaceID == "ws-1" }},
		{"target", messages.AuditListRequest{Target: "beta"}, func(r messages.AuditRecord) bool { return r.ProviderName == "beta" }},
		{"action", messages.AuditListRequest{Action: messages.SubjectTokensGet, Limit: 1}, func(r messages.AuditRecord) bool { return r.Action == messages.SubjectTokensGet }},
		{"key", messages.AuditListRequest{KeyID: gw}, func(r messages.AuditRecord) bool { return r.KeyID == gw || r.ActorKeyID == gw }},
		{"window", messages.AuditListRequest{Since: alpha.At, Until: gamma.At, Limit: 2},
			func(r messages.AuditRecord) bool { return !r.At.Before(alpha.At) && r.At.Before(gamma.At) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slices.DeleteFunc(slices.Clone(union), func(r messages.AuditRecord) bool { return !tc.keep(r) })
			if got := e.auditAll(tc.req); len(want) == 0 || !slices.Equal(ids(got), ids(want)) {
				t.Errorf("got %v\nwant %v", ids(got), ids(want))
			}
		})
	}

	// HTTP: the same, filters as query parameters.
	var viaHTTP []messages.AuditRecord
	q := url.Values{"limit": {"2"}, "since": {alpha.At.Add(-time.Hour).Format(time.RFC3339Nano)}}
	for range 100 {
		status, body := e.api(http.MethodGet, "/v1/audit?"+q.Encode(), nil)
		var page messages.AuditListReply
		if status != http.StatusOK || json.Unmarshal(body, &page) != nil {
			t.Fatalf("GET /v1/audit: %d %s", status, body)
		}
		viaHTTP = append(viaHTTP, page.Records...)
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if !slices.Equal(ids(viaHTTP), ids(union)) {
		t.Errorf("GET /v1/audit:\n got %v\nwant %v", ids(viaHTTP), ids(union))
	}
	for _, tc := range []struct {
		query, want string
		status      int
	}{
		{"principle=operator", `unknown query parameter \"principle\"`, http.StatusBadRequest},
		{"since=yesterday", "since must be an RFC 3339 time", http.StatusBadRequest},
		{"limit=many&target=a&target=b", "target is given more than once; limit must be an integer", http.StatusBadRequest},
		{"cursor=nope", "cursor is not a cursor", http.StatusBadRequest},
	} {
		if status, body := e.api(http.MethodGet, "/v1/audit?"+tc.query, nil); status != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET /v1/audit?%s: %d %s, want %d and %q", tc.query, status, body, tc.status, tc.want)
		}
	}
	if status, _ := e.api(http.MethodPost, "/v1/audit", []byte(`{}`)); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/audit: %d", status)
	}
	if status, _ := e.do(http.MethodGet, "/v1/audit", "", "Bearer "+handshakeKey, nil); status != http.StatusForbidden {
		t.Errorf("the handshake's key on GET /v1/audit: %d", status)
	}
	hs := &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: handshakeKey}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Request(ctx, messages.SubjectAuditList, messages.AuditListRequest{}, nil); !errors.Is(err, messages.ErrForbidden) {
		t.Errorf("the handshake's key on audit.list: %v", err)
	}

	// Without the vault's half, no answer.
	e.vault.mu.Lock()
	e.vault.auditErr = messages.Errorf(messages.CodeInternal, "internal error")
	e.vault.mu.Unlock()
	if err := e.request(messages.SubjectAuditList, messages.AuditListRequest{}, nil); !errors.Is(err, messages.ErrUnavailable) {
		t.Errorf("audit.list with the vault failing: %v, want unavailable", err)
	}
}
