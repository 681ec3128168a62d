package system_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/soak"
	"github.com/nexus-broker/nexus/system/systemtest"
)

// TestSoakShort is `make soak` made small (system/soak): 2,000 connections
// whose access tokens live a minute, seeded with refresh tokens minted at
// the fosite provider (strict rotation: a rotated token presented again is
// refused and its grant revoked), renewed by two refreshers, sampled by a
// tokens.get load for 35 seconds. Every seeded token expires within the
// minute, so the renewals run from the first second. It holds the soak's
// promises: no tokens.get answer carries an expired token or one the
// provider refuses while the vault still serves it, no refresh token is
// presented twice, every connection stays active, no request fails, no
// stored token expires before the refreshers renew it; and
// both refreshers renewed connections, and the provider accepted tokens
// the load was served.
func TestSoakShort(t *testing.T) {
	in := systemtest.Infra{
		NATSURL: testkit.NATS(t), DatabaseURL: testkit.Postgres(t), RedisURL: testkit.Redis(t),
		EncryptionKey: testkit.Key32(t), StateKey: testkit.Key32(t), APIKeys: []string{gatewayKey},
	}
	var progress strings.Builder
	r, err := soak.Run(context.Background(), in, soak.Config{
		Connections: 2000, Duration: 35 * time.Second, TokenTTL: time.Minute,
		Rate: 50, Workers: 8, Progress: &progress, Log: testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	r.Print(&report)
	t.Log("\n" + progress.String() + report.String())
	if p := r.Problems(); len(p) > 0 {
		t.Fatalf("the soak broke its promises: %s", strings.Join(p, "; "))
	}
	for i, m := range r.Refreshers {
		if m["refreshed"] == 0 {
			t.Errorf("refresher %d renewed nothing", i+1)
		}
	}
	if r.Tokens.Accepted == 0 {
		t.Errorf("the provider accepted none of the %d tokens served", r.Tokens.Served)
	}
}
