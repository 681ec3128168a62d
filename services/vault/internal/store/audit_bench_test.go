package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
)

// BenchmarkInsertAudit is the audit sink's write of 10,000 rows (one COPY),
// as a working set of many connections read makes every 2 s: per row.
func BenchmarkInsertAudit(b *testing.B) {
	st, _ := storetest.Open(b, store.Options{})
	now := time.Now().UTC().Truncate(time.Microsecond)
	entries := make([]store.AuditEntry, 10000)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range entries {
			id, err := store.NewID()
			if err != nil {
				b.Fatal(err)
			}
			entries[i] = store.AuditEntry{ID: id, At: now, LastAt: now, Count: 3, Principal: "gateway", KeyID: "0123456789abcdef",
				Action: "v1.tokens.get", Target: fmt.Sprintf("0193a8b0-0000-7000-8000-%012d", i), WorkspaceID: "ws-1", Outcome: "ok"}
		}
		b.StartTimer()
		if err := st.InsertAudit(context.Background(), entries); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/row")
}
