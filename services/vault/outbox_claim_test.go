package vault

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
)

// TestClaimOutboxLeases: events leased to one relay are not handed to
// another until the lease runs out, but they are to the same relay's next
// claim at once (it gave that batch up: its publish failed, or the claim's
// reply was lost while NATS failed over).
func TestClaimOutboxLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, _ := storetest.Open(t, store.Options{Now: func() time.Time { return clock }})
	if _, err := st.PutClient(ctx, store.Client{ProviderID: "p", ProviderName: "p", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://p.example/token"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w"}); err != nil {
		t.Fatal(err)
	}
	claim := func(owner string) int {
		t.Helper()
		evs, _, err := st.ClaimOutbox(ctx, owner, 10, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	if n := claim("relay-a"); n != 1 {
		t.Fatalf("first claim: %d events, want 1", n)
	}
	if n := claim("relay-b"); n != 0 {
		t.Fatalf("another relay got %d events leased to relay-a", n)
	}
	if n := claim("relay-a"); n != 1 {
		t.Fatalf("relay-a's next claim: %d events, want its own lease back", n)
	}
	clock = clock.Add(31 * time.Second)
	if n := claim("relay-b"); n != 1 {
		t.Fatalf("after the lease: relay-b got %d events, want 1", n)
	}
}
