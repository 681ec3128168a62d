package vault_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
	"github.com/nexus-broker/nexus/services/vault/seed"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestSeededConnectionsAreServedAndRefreshed: connections written by
// seed.Connections, with refresh tokens minted at the real provider, are
// what a consent leaves. The vault lists them, serves the seeded access
// token as it was sealed (it opens only at the row, field and version it
// is bound to), schedules the expired ones for the background refresher
// and not the fresh one, and refreshes each kind: inline on tokens.get of
// an expired token, by the refresher's run, and forced by tokens.refresh.
// Each refresh presents the seeded refresh token exactly once, and the
// tokens it brings are the provider's.
func TestSeededConnectionsAreServedAndRefreshed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	scopes := []string{"openid", "offline_access", "profile"}
	const n = 3
	var refresh [n]string
	for i := range refresh {
		rt, err := e.op.MintRefreshToken(clientID, scopes)
		if err != nil {
			t.Fatal(err)
		}
		refresh[i] = rt
	}
	ring, err := seed.Keyring(base64.StdEncoding.EncodeToString(e.key))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	// 0 is fresh; 1 and 2 expired, 2 the longer ago (claimed first).
	expires := [n]time.Time{now.Add(time.Hour), now.Add(-time.Minute), now.Add(-2 * time.Minute)}
	ids, err := seed.Connections(ctx, e.pool, ring, seed.Spec{
		ProviderID: providerID, WorkspaceID: workspace, Count: n, Scopes: scopes,
		Tokens: func(i int) (seed.Tokens, error) {
			return seed.Tokens{Access: seededAccess(i), Refresh: refresh[i]}, nil
		},
		ExpiresAt: func(i int) time.Time { return expires[i] },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("%d ids, want %d", len(ids), n)
	}

	var list messages.ListConnectionsReply
	e.mustCall(messages.SubjectConnectionsList, messages.ListConnectionsRequest{WorkspaceID: workspace}, &list)
	if len(list.Connections) != n {
		t.Fatalf("connections.list has %d connections, want %d", len(list.Connections), n)
	}
	for i, id := range ids {
		c := e.get(id)
		if c.Status != messages.StatusActive || c.ProviderID != providerID || c.Provider != "test-provider" || c.WorkspaceID != workspace ||
			fmt.Sprint(c.Scopes) != fmt.Sprint(scopes) || c.ExpiresAt == nil || !c.ExpiresAt.Equal(expires[i]) {
			t.Fatalf("connection %d as the vault reads it: %+v", i, c)
		}
	}

	// The fresh one: served as sealed, due lead before it expires.
	cr, err := e.token(ids[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if cr.AccessToken != seededAccess(0) || cr.ExpiresAt == nil || !cr.ExpiresAt.Equal(expires[0]) {
		t.Fatalf("tokens.get of the fresh connection: a token of %d bytes expiring %v, want the seeded one expiring %v", len(cr.AccessToken), cr.ExpiresAt, expires[0])
	}
	var due time.Time
	if err := e.pool.QueryRow(ctx, "select refresh_due_at from vault.connections where id = $1", ids[0]).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if want := expires[0].Add(-store.DefaultRefreshLead); !due.Equal(want) {
		t.Fatalf("refresh_due_at = %v, want %v (the default lead before expiry)", due, want)
	}

	// The expired ones are due, most overdue first; the fresh one is not.
	items := e.claim("seed-test", 10, 60)
	if len(items) != 2 || items[0].ConnectionID != ids[2] || items[1].ConnectionID != ids[1] || items[0].TokenVersion != seed.Version {
		t.Fatalf("claimed %+v, want connections 2 then 1 at version %d", items, seed.Version)
	}
	if r := e.run(ids[2], items[0].TokenVersion); r.Outcome != messages.RefreshDone {
		t.Fatalf("refresher's run of connection 2: %+v", r)
	}
	// tokens.get of connection 1, expired, refreshes it inline.
	for i := 1; i < n; i++ {
		cr, err := e.token(ids[i], nil)
		if err != nil {
			t.Fatalf("tokens.get of connection %d: %v", i, err)
		}
		e.wantProviderToken(i, cr)
	}
	var forced messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: ids[0]}, &forced)
	e.wantProviderToken(0, forced)

	uses := e.op.RefreshTokenUses()
	for i, rt := range refresh {
		if got := uses[oidcprovider.TokenHash(rt)]; got != 1 {
			t.Errorf("seeded refresh token %d presented %d times, want once", i, got)
		}
		if stored := e.storedRefreshToken(ids[i]); stored == rt || stored == "" {
			t.Errorf("connection %d: the stored refresh token is not the rotated one", i)
		}
	}
}

func seededAccess(i int) string { return fmt.Sprintf("seeded-access-%d", i) }

// wantProviderToken fails unless cr is connection i's refreshed token: not
// the seeded one, unexpired, and accepted by the provider's userinfo.
func (e *env) wantProviderToken(i int, cr messages.Credential) {
	e.t.Helper()
	if cr.AccessToken == seededAccess(i) || cr.ExpiresAt == nil || !cr.ExpiresAt.After(time.Now()) {
		e.t.Fatalf("connection %d after its refresh: the seeded token, or one expiring %v", i, cr.ExpiresAt)
	}
	req, err := http.NewRequest(http.MethodGet, e.op.Issuer()+"/userinfo", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cr.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("connection %d: the provider's userinfo answers its refreshed token with %d", i, resp.StatusCode)
	}
}

// BenchmarkSeedConnections seeds b.N connections in one call, with random
// tokens of 26 characters each (run it with -benchtime 1000000x for a million):
//
//	go test -run '^$' -bench BenchmarkSeedConnections -benchtime 1000000x ./services/vault/
func BenchmarkSeedConnections(b *testing.B) {
	_, pool := storetest.Open(b, store.Options{})
	ring := storetest.Keyring(b)
	ctx := context.Background()
	b.ResetTimer()
	ids, err := seed.Connections(ctx, pool, ring, seed.Spec{
		ProviderID: providerID, WorkspaceID: workspace, Count: b.N, ExpiresIn: time.Hour,
		Tokens: func(i int) (seed.Tokens, error) {
			return seed.Tokens{Access: rand.Text(), Refresh: rand.Text()}, nil
		},
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(ids))/b.Elapsed().Seconds(), "rows/s")
}
