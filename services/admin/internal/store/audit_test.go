package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestRecordReconsent: a re-consent made in the console is admin's record,
// naming the operator, the connection (as its target, as the vault's records
// do), its workspace and its provider; filters by connection and by
// workspace find it, and select no provider change, which names neither.
func TestRecordReconsent(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := New(pool, func() time.Time { return now })
	provider := messages.Provider{ID: "0193a8b0-0000-7000-8000-0000000000aa", Name: "acme", Type: messages.ProviderOAuth2,
		AuthorizationEndpoint: "https://acme.example/authorize", TokenEndpoint: "https://acme.example/token", ClientID: "client"}
	if _, err := st.Create(ctx, provider, func(context.Context) (bool, error) { return false, nil }, Audit{Principal: "operator", KeyID: "op-key-1", Action: messages.SubjectProvidersCreate}); err != nil {
		t.Fatal(err)
	}
	conn := messages.Connection{ConnectionID: "0193a8b0-0000-7000-8000-0000000000c1", Provider: "acme", ProviderID: provider.ID, WorkspaceID: "ws-1"}
	now = now.Add(time.Minute)
	if err := st.RecordReconsent(ctx, Audit{Principal: "operator", KeyID: "op-key-2"}, conn); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    AuditFilter
		want []string // actions, newest first
	}{
		{"everything", AuditFilter{}, []string{messages.SubjectHandshakeBegin, messages.SubjectProvidersCreate}},
		{"the connection", AuditFilter{Target: conn.ConnectionID}, []string{messages.SubjectHandshakeBegin}},
		{"its workspace", AuditFilter{WorkspaceID: "ws-1"}, []string{messages.SubjectHandshakeBegin}},
		{"another workspace", AuditFilter{WorkspaceID: "ws-2"}, nil},
		{"the provider", AuditFilter{Target: provider.ID}, []string{messages.SubjectProvidersCreate}},
		{"the operator's key", AuditFilter{KeyID: "op-key-2"}, []string{messages.SubjectHandshakeBegin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Limit = 10
			got, _, err := st.ListAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d records %+v, want %v", len(got), got, tc.want)
			}
			for i, r := range got {
				if r.Action != tc.want[i] {
					t.Fatalf("record %d is %s, want %s", i, r.Action, tc.want[i])
				}
				if r.Action != messages.SubjectHandshakeBegin {
					continue
				}
				if r.Principal != "operator" || r.KeyID != "op-key-2" || r.Target != conn.ConnectionID || r.WorkspaceID != "ws-1" ||
					r.ProviderName != "acme" || r.Outcome != messages.OutcomeOK || !r.At.Equal(now) {
					t.Fatalf("the re-consent's record: %+v", r)
				}
			}
		})
	}
}
