package vault_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// benchDue is how many connections are due in the claim-cost benchmarks,
// whatever the number stored (NEXUS_BENCH_DUE overrides it).
func benchDue(b *testing.B) int {
	if v := os.Getenv("NEXUS_BENCH_DUE"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			b.Fatalf("NEXUS_BENCH_DUE=%q: want a positive integer", v)
		}
		return n
	}
	return 1000
}

// benchSeeder writes connections straight into vault.connections with COPY,
// their tokens sealed exactly as the store seals them (bound to row and field).
type benchSeeder struct {
	b    *testing.B
	pool *pgxpool.Pool
	keys *keyring.Keyring
}

// seed adds n connections: due of them active and due now, the rest a mix
// of active ones due later (as every fresh token is) and ones that no
// longer refresh (attention_required, revoked). refresh tokens, when given,
// go to the due rows.
func (s benchSeeder) seed(n, due int, refreshTokens []string) {
	s.b.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	i := 0
	var sealErr error
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= n || sealErr != nil {
			return nil, sealErr
		}
		u, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		id := u.String()
		rt := "bench-refresh-" + id
		if i < len(refreshTokens) {
			rt = refreshTokens[i]
		}
		at, err := s.keys.Seal(store.ConnectionPlace(id, "access_token", 0), []byte("bench-access-"+id))
		if err != nil {
			return nil, err
		}
		sealedRT, err := s.keys.Seal(store.ConnectionPlace(id, "refresh_token", 0), []byte(rt))
		if err != nil {
			return nil, err
		}
		status, dueAt := "active", any(now.Add(10*time.Minute+time.Duration(i%3000)*time.Second))
		switch {
		case i < due:
			dueAt = now.Add(-time.Duration(i+1) * time.Millisecond)
		case i%10 == 1:
			status, dueAt = "attention_required", nil
		case i%10 == 2:
			status, dueAt, at, sealedRT = "revoked", nil, nil, nil
		}
		expires := now.Add(time.Hour)
		i++
		return []any{u, providerID, fmt.Sprintf("ws-%d", i%1000), status, []string{"offline_access"}, at, sealedRT, "bearer", expires, dueAt, now, now}, nil
	})
	cols := []string{"id", "provider_id", "workspace_id", "status", "scopes", "access_token", "refresh_token", "token_type", "expires_at", "refresh_due_at", "created_at", "updated_at"}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"vault", "connections"}, cols, src); err != nil {
		s.b.Fatalf("seed: %v", err)
	}
	if _, err := s.pool.Exec(ctx, "analyze vault.connections"); err != nil {
		s.b.Fatal(err)
	}
}

// undue moves every due row a minute ahead, so the next step starts from
// exactly the due rows it seeds.
func (s benchSeeder) undue() {
	s.b.Helper()
	if _, err := s.pool.Exec(context.Background(), `update vault.connections set refresh_due_at = now() + interval '1 hour'
		where status = 'active' and refresh_due_at <= now()`); err != nil {
		s.b.Fatal(err)
	}
}

func (s benchSeeder) count() int {
	var n int
	if err := s.pool.QueryRow(context.Background(), "select count(*) from vault.connections").Scan(&n); err != nil {
		s.b.Fatal(err)
	}
	return n
}

// explainClaim returns the plan of one claim of limit rows, executed and
// rolled back.
func (s benchSeeder) explainClaim(limit int) string {
	s.b.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		s.b.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, "explain (analyze, buffers, costs off, timing on) "+store.ClaimRefreshSQL, "bench", limit, 60.0, time.Now().UTC())
	if err != nil {
		s.b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.b.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// BenchmarkRefresh measures the background refresh path at scale:
//
//	go test -run '^$' -bench BenchmarkRefresh -benchtime 2000x ./services/vault/...
//
// claim/connections=N: one claim of 100 rows (executed, then rolled back so
// the due set stays the same) among N stored connections of which the same
// benchDue are due; ns/op must stay flat as N grows: O(due), not O(all).
// claim+run: refreshes per second through vault.refresh.claim and
// vault.refresh.run over NATS against the loopback provider, with real
// rotating refresh tokens, among 100,000 stored connections.
// The claim's EXPLAIN (ANALYZE, BUFFERS) goes to testdata/claim_plan.txt.
func BenchmarkRefresh(b *testing.B) {
	ctx := context.Background()
	dbURL, natsURL := testkit.Postgres(b), testkit.NATS(b)
	key, err := config.DecodeKey(testkit.Key32(b))
	if err != nil {
		b.Fatal(err)
	}
	op, err := oidcprovider.New(oidcprovider.Options{AlwaysIssueRefreshToken: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(op.Close)
	if err := op.AddClient(oidcprovider.Client{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}}); err != nil {
		b.Fatal(err)
	}
	svc, err := vault.Start(ctx, vault.Config{
		Common:        config.Common{NATSURL: natsURL, Prefix: messages.DefaultPrefix},
		GatewayKeys:   []string{apiKey},
		HandshakeKeys: []string{handshakeKey},
		AdminKeys:     []string{adminKey},
		RefresherKeys: []string{refresherKey},
		DatabaseURL:   dbURL, EncryptionKey: key,
		// The provider listens on 127.0.0.1.
		ProviderNetworks: egress.Networks{netip.MustParsePrefix("127.0.0.1/32")},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close(context.Background()) })
	nc := testkit.Conn(b, natsURL)
	admin := &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: adminKey}
	client := &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: refresherKey}
	if err := admin.Request(ctx, messages.SubjectVaultClientsPut, messages.VaultClient{
		ProviderID: providerID, ProviderName: "bench-provider", Type: messages.ProviderOAuth2,
		ClientID: clientID, ClientSecret: secret, TokenEndpoint: op.Issuer() + "/token",
	}, &messages.VaultClientReply{}); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	keys, err := keyring.New(key)
	if err != nil {
		b.Fatal(err)
	}
	s := benchSeeder{b: b, pool: pool, keys: keys}
	due := benchDue(b)

	var plans strings.Builder
	claimCost := func(total int) {
		b.Run(fmt.Sprintf("claim/connections=%d", total), func(b *testing.B) {
			for b.Loop() {
				tx, err := pool.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				rows, err := tx.Query(ctx, store.ClaimRefreshSQL, "bench", 100, 60.0, time.Now().UTC())
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Close(); rows.Err() != nil || n != min(100, due) {
					b.Fatalf("claimed %d rows (%v)", n, rows.Err())
				}
				_ = tx.Rollback(ctx)
			}
			b.ReportMetric(float64(due), "due")
		})
		plan := s.explainClaim(100)
		b.Logf("claim plan, %d connections, %d due:\n%s", total, due, plan)
		fmt.Fprintf(&plans, "-- %d connections, %d of them due; claim limit 100\n%s\n\n", total, due, plan)
	}

	start := time.Now()
	s.seed(10_000, due, nil)
	b.Logf("seeded 10,000 connections in %v", time.Since(start).Round(time.Millisecond))
	claimCost(10_000)

	s.undue()
	start = time.Now()
	s.seed(90_000, due, nil)
	seed90k := time.Since(start)
	b.Logf("seeded 90,000 more connections in %v", seed90k.Round(time.Millisecond))
	claimCost(100_000)
	s.undue()

	b.Run("claim+run", func(b *testing.B) {
		// Arm b.N connections: due now, each with a real refresh token.
		tokens := make([]string, b.N)
		for i := range tokens {
			if tokens[i], err = op.MintRefreshToken(clientID, []string{"offline_access"}); err != nil {
				b.Fatal(err)
			}
		}
		s.seed(b.N, b.N, tokens)
		grants := op.RefreshGrants()
		b.ResetTimer()
		start := time.Now()
		var (
			refreshed, other atomic.Int64
			work             = make(chan messages.RefreshItem, 1000)
			wg               sync.WaitGroup
		)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for it := range work {
					var r messages.RefreshRunReply
					if err := client.Request(ctx, messages.SubjectVaultRefreshRun, messages.RefreshRun{ConnectionID: it.ConnectionID, TokenVersion: it.TokenVersion}, &r); err != nil {
						b.Error(err)
						other.Add(1)
						continue
					}
					if r.Outcome == messages.RefreshDone {
						refreshed.Add(1)
					} else {
						other.Add(1)
					}
				}
			}()
		}
		for {
			var r messages.RefreshClaimReply
			if err := client.Request(ctx, messages.SubjectVaultRefreshClaim, messages.RefreshClaim{Owner: "bench", Limit: 100, LeaseSeconds: 60}, &r); err != nil {
				b.Fatal(err)
			}
			if len(r.Items) == 0 {
				break
			}
			for _, it := range r.Items {
				work <- it
			}
		}
		close(work)
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if int(refreshed.Load()) != b.N || other.Load() != 0 || op.RefreshGrants()-grants != b.N {
			b.Fatalf("refreshed %d of %d (%d other outcomes, %d provider grants)", refreshed.Load(), b.N, other.Load(), op.RefreshGrants()-grants)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "refreshes/s")
		b.ReportMetric(float64(s.count()), "connections")
	})

	// 1,000,000 when seeding takes under a minute (extrapolated from 90,000).
	if projected := seed90k * 10; projected < time.Minute {
		s.undue()
		start = time.Now()
		s.seed(1_000_000-s.count(), due, nil)
		b.Logf("seeded up to 1,000,000 connections in %v", time.Since(start).Round(time.Millisecond))
		claimCost(1_000_000)
	} else {
		b.Logf("skipping 1,000,000 connections: seeding would take about %v", projected.Round(time.Second))
	}

	if err := os.WriteFile(filepath.Join("testdata", "claim_plan.txt"), []byte(
		"EXPLAIN (ANALYZE, BUFFERS) of the refresh claim (internal/store/refresh.go),\n"+
			"written by: go test -run '^$' -bench BenchmarkRefresh ./services/vault/...\n\n"+plans.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}
