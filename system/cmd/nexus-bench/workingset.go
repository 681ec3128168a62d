package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/seed"
)

// workingSet is the second half of the bench: stored connections seeded
// sealed with COPY, of which the Gateway reads a working set, uniformly and
// Zipf-like (a few connections hot, a long tail), against the same-size
// floor measured in the same run.
type workingSet struct {
	stored, read int
	dbURL        string
	key          string // ENCRYPTION_KEY
	providerID   string
	workspace    string
	tokenLen     int
	apiKey       string
}

// sequence is a precomputed order of requests: picking the next costs an
// atomic add, the same for uniform and Zipf reads.
type sequence struct {
	bodies [][]byte
	order  []int32
	next   atomic.Uint64
	apiKey string
}

func (s *sequence) mk(subject string) func() *nats.Msg {
	return func() *nats.Msg {
		i := s.order[s.next.Add(1)%uint64(len(s.order))]
		m := nats.NewMsg(subject)
		m.Data = s.bodies[i]
		m.Header.Set(messages.HeaderAPIKey, s.apiKey)
		return m
	}
}

// seed writes the stored connections and returns the ids of the working set.
func (w workingSet) seed(ctx context.Context) ([]string, error) {
	pool, err := pgxpool.New(ctx, w.dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	ring, err := seed.Keyring(w.key)
	if err != nil {
		return nil, err
	}
	token := strings.Repeat("t", w.tokenLen)
	start := time.Now()
	ids, err := seed.Connections(ctx, pool, ring, seed.Spec{
		ProviderID: w.providerID, WorkspaceID: w.workspace, Count: w.stored, Scopes: []string{"openid", "profile"},
		// As long as the real token, unique per connection.
		Tokens:    func(i int) (seed.Tokens, error) { return seed.Tokens{Access: fmt.Sprintf("%s-%09d", token, i)}, nil },
		ExpiresIn: 2 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("seed %d connections: %w", w.stored, err)
	}
	if _, err := pool.Exec(ctx, "analyze vault.connections"); err != nil {
		return nil, err
	}
	fmt.Printf("seeded %d connections (sealed, COPY) in %s\n", w.stored, time.Since(start).Round(100*time.Millisecond))
	// The working set: every (stored/read)-th connection, spread over the table.
	set := make([]string, 0, w.read)
	for i := 0; len(set) < w.read; i += w.stored / w.read {
		set = append(set, ids[i])
	}
	return set, nil
}

// sequences returns the uniform and the Zipf-like order over set.
func (w workingSet) sequences(set []string) (uniform, zipf *sequence) {
	bodies := make([][]byte, len(set))
	for i, id := range set {
		bodies[i], _ = json.Marshal(messages.TokenRequest{ConnectionID: id, WorkspaceID: w.workspace})
	}
	const n = 1 << 21
	r := rand.New(rand.NewPCG(1, 2))
	uniform = &sequence{bodies: bodies, order: make([]int32, n), apiKey: w.apiKey}
	zipf = &sequence{bodies: bodies, order: make([]int32, n), apiKey: w.apiKey}
	z := rand.NewZipf(r, 1.1, 1, uint64(len(set)-1))
	// Zipf ranks mapped to connections by a permutation, so the hot ones
	// are not the table's first rows.
	perm := r.Perm(len(set))
	for i := range n {
		uniform.order[i] = int32(r.IntN(len(set)))
		zipf.order[i] = int32(perm[z.Uint64()])
	}
	return uniform, zipf
}

// heapInUse is the process's live heap after a collection: the broker runs
// in this process, so its growth while the working set is read is the
// vault's cache.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// measure reads the working set through once (the cache's misses), then
// measures each order as the hot phase is measured.
func (w workingSet) measure(client *nats.Conn, subject string, set []string, sized *phase, pl plan) error {
	uniform, zipf := w.sequences(set)
	before := heapInUse()
	cold := &sequence{bodies: uniform.bodies, order: make([]int32, len(set)), apiKey: w.apiKey}
	for i := range cold.order {
		cold.order[i] = int32(i)
	}
	start := time.Now()
	coldThr, _, err := throughput(client, cold.mk(subject), pl.inflight, 0, int64(len(set)))
	if err != nil {
		return fmt.Errorf("first read of the working set: %w", err)
	}
	warm := heapInUse()
	fmt.Printf("first read of the %d connections (every one a cache miss, from PostgreSQL): %.0f req/s, %s\n", len(set), coldThr, time.Since(start).Round(100*time.Millisecond))

	phases := []*phase{{name: "uniform", mk: uniform.mk(subject)}, {name: "zipf", mk: zipf.mk(subject)}}
	if err := measure(client, phases, pl); err != nil {
		return err
	}
	fmt.Printf("\nworking set: %d of %d stored connections\n", len(set), w.stored)
	fmt.Printf("%-28s %12s %12s %8s %10s\n", "", "same-size", "tokens.get", "ratio", "target")
	for i, name := range []string{"uniform", "zipf (s=1.1)"} {
		p := phases[i]
		r := p.thr / sized.thr
		fmt.Printf("%-28s %12.0f %12.0f %8.2f %10s %s\n", name+fmt.Sprintf(" @%d (req/s)", pl.inflight), sized.thr, p.thr, r, ">= 0.50", verdict(r >= 0.5))
		fmt.Printf("%-28s %12s %12s %8.2f\n", name+" CPU per request", us1(sized.cpuPerRequest()), us1(p.cpuPerRequest()), float64(sized.cpuPerRequest())/float64(p.cpuPerRequest()))
		fmt.Printf("%-28s %12s %12s %8.2f\n", name+" p50 @1", us(sized.lat.p50), us(p.lat.p50), float64(p.lat.p50)/float64(sized.lat.p50))
		fmt.Printf("%-28s %12s %12s %8.2f\n", name+" p99 @1", us(sized.lat.p99), us(p.lat.p99), float64(p.lat.p99)/float64(sized.lat.p99))
	}
	grew := int64(warm) - int64(before)
	fmt.Printf("heap in use (broker, all services): %s after the first read, +%s for %d cached credentials (%s each)\n",
		mib(warm), mib(uint64(max(grew, 0))), len(set), kib(float64(grew)/float64(len(set))))
	return nil
}

func mib(b uint64) string  { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.2f KiB", b/1024) }
