package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/audit"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// db is a real PostgreSQL database with schema vault, reached through a
// dialer that can be cut: down makes every new connection fail as a
// database that is not there does, and drops the pool's idle ones.
type db struct {
	t    *testing.T
	pool *pgxpool.Pool
	st   *store.Store
	cut  atomic.Bool
}

func newDB(t *testing.T) *db {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	d := &db{t: t}
	var dialer net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if d.cut.Load() {
			return nil, errors.New("connection refused (the test cut the database off)")
		}
		return dialer.DialContext(ctx, network, addr)
	}
	if d.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.pool.Close)
	if err := store.Migrate(ctx, d.pool); err != nil {
		t.Fatal(err)
	}
	d.st = store.New(d.pool, storetest.Keyring(t), store.Options{})
	return d
}

func (d *db) down() { d.cut.Store(true); d.pool.Reset() }
func (d *db) up()   { d.cut.Store(false) }

// rows are every entry of vault.audit, newest first.
func (d *db) rows() []store.AuditEntry {
	d.t.Helper()
	out, _, err := d.st.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

var (
	callers  = apikey.NewSet().Add(apikey.Gateway, []string{"audit-test-gateway-key-0123"}).Add(apikey.Handshake, []string{"audit-test-handshake-key-0123"})
	gateway  = identify("audit-test-gateway-key-0123")
	hsCaller = identify("audit-test-handshake-key-0123")
)

func identify(k string) apikey.Caller {
	c, ok := callers.Identify(k)
	if !ok {
		panic("unknown test key")
	}
	return c
}

func tokensGet(target string, at time.Time, code messages.ErrorCode) natsx.AuditRecord {
	return natsx.AuditRecord{At: at, Caller: gateway, Subject: messages.SubjectTokensGet, Target: target, Workspace: "ws-1", Code: code}
}

func revoke(target string, at time.Time) natsx.AuditRecord {
	return natsx.AuditRecord{At: at, Caller: gateway, Subject: messages.SubjectConnectionsRevoke, Target: target, Workspace: "ws-1"}
}

func newSink(t testing.TB, w audit.Writer, o audit.Options) *audit.Sink {
	t.Helper()
	s, err := audit.New(w, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func options(reg prometheus.Registerer) audit.Options {
	return audit.Options{Aggregate: []string{messages.SubjectTokensGet}, Interval: time.Hour, Registerer: reg}
}

// TestAggregates: a burst of identical credential releases is one row with
// their count and first and last time; a different outcome or connection is
// another group; every other request is a row of its own.
func TestAggregates(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	s := newSink(t, d.st, options(nil))
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		s.Record(tokensGet("conn-a", t0.Add(time.Duration(i)*time.Millisecond), ""))
	}
	for i := range 3 {
		s.Record(tokensGet("conn-b", t0.Add(time.Duration(i)*time.Second), messages.CodeNotFound))
	}
	s.Record(revoke("conn-a", t0.Add(time.Minute)))
	s.Record(revoke("conn-a", t0.Add(time.Minute)))
	forbidden := natsx.AuditRecord{At: t0.Add(2 * time.Minute), Caller: hsCaller, Subject: messages.SubjectConnectionsRevoke, Code: messages.CodeForbidden}
	s.Record(forbidden)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.AuditEntry{}
	for _, e := range d.rows() {
		k := e.Action + " " + e.Target + " " + e.Outcome
		if prev, ok := got[k]; ok {
			e.Count += prev.Count
		}
		got[k] = e
	}
	if len(d.rows()) != 5 {
		t.Fatalf("%d rows, want 5: %+v", len(d.rows()), d.rows())
	}
	for _, w := range []struct {
		key         string
		count       int64
		first, last time.Time
		principal   string
	}{
		{"v1.tokens.get conn-a ok", 1000, t0, t0.Add(999 * time.Millisecond), apikey.Gateway},
		{"v1.tokens.get conn-b not_found", 3, t0, t0.Add(2 * time.Second), apikey.Gateway},
		{"v1.connections.revoke conn-a ok", 2, t0.Add(time.Minute), t0.Add(time.Minute), apikey.Gateway},
		{"v1.connections.revoke  forbidden", 1, t0.Add(2 * time.Minute), t0.Add(2 * time.Minute), apikey.Handshake},
	} {
		e, ok := got[w.key]
		if !ok {
			t.Errorf("no row %q in %+v", w.key, got)
			continue
		}
		if e.Count != w.count || !e.At.Equal(w.first) || !e.LastAt.Equal(w.last) || e.Principal != w.principal || len(e.KeyID) != 16 {
			t.Errorf("%s: %+v, want count %d from %v to %v by %s", w.key, e, w.count, w.first, w.last, w.principal)
		}
	}
	// The next flush starts afresh.
	s.Record(tokensGet("conn-a", t0.Add(time.Hour), ""))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows := d.rows(); len(rows) != 6 || rows[0].Count != 1 || !rows[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after a second flush: %+v", rows)
	}
}

// TestOutage: while the database is down nothing blocks and nothing is
// lost until the buffer is full; a burst of one group keeps counting in
// one row; what does not fit is dropped and counted; once the database is
// back everything held is written.
func TestOutage(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	reg := prometheus.NewRegistry()
	o := options(reg)
	o.MaxPending = 10
	var logs syncBuffer
	o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	s := newSink(t, d.st, o)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

	d.down()
	for i := range 5 {
		s.Record(tokensGet(fmt.Sprintf("conn-%d", i), t0, ""))
	}
	for i := range 3 {
		s.Record(revoke(fmt.Sprintf("conn-%d", i), t0))
	}
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("a flush to a database that is down succeeded")
	}
	// 8 rows wait; conn-0's releases merge into its waiting group; of the
	// new groups two fit and three are dropped.
	for range 1000 {
		s.Record(tokensGet("conn-0", t0.Add(time.Second), ""))
	}
	for i := range 5 {
		s.Record(tokensGet(fmt.Sprintf("conn-new-%d", i), t0, ""))
	}
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("a flush to a database that is down succeeded")
	}
	if n := dropped(t, reg); n != 3 {
		t.Fatalf("dropped %v, want 3", n)
	}
	// The collection has its bound too, flushed or not.
	for i := range 15 {
		s.Record(revoke(fmt.Sprintf("conn-more-%d", i), t0))
	}
	if n := dropped(t, reg); n != 8 {
		t.Fatalf("dropped %v, want 8", n)
	}

	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "the database does not take them") || !strings.Contains(l, "cut the database off") {
		t.Errorf("no warning of the outage: %s", l)
	}

	d.up()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("flush once the database is back: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "audit records are written again") {
		t.Errorf("no word of the recovery: %s", l)
	}
	rows := d.rows()
	var conn0 int64
	for _, e := range rows {
		if e.Action == messages.SubjectTokensGet && e.Target == "conn-0" {
			conn0 = e.Count
			if !e.At.Equal(t0) || !e.LastAt.Equal(t0.Add(time.Second)) {
				t.Errorf("conn-0 from %v to %v", e.At, e.LastAt)
			}
		}
	}
	if len(rows) != 10 || conn0 != 1001 {
		t.Fatalf("%d rows (want the 10 held), conn-0 counted %d (want 1001): %+v", len(rows), conn0, rows)
	}
	if n := dropped(t, reg); n != 8+10 {
		t.Fatalf("dropped %v, want 18 (the collection's 10 beyond what the buffer held)", n)
	}
}

// syncBuffer is a log sink safe for the sink's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// dropped reads nexus_vault_audit_dropped_total.
func dropped(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "nexus_vault_audit_dropped_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no nexus_vault_audit_dropped_total")
	return 0
}

// TestFlushesEarly: FlushAt records collected are written at once, not at
// the next interval (an hour away).
func TestFlushesEarly(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	o := options(nil)
	o.FlushAt = 5
	s := newSink(t, d.st, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := range 5 {
		s.Record(revoke(fmt.Sprintf("conn-%d", i), time.Now()))
	}
	for deadline := time.Now().Add(10 * time.Second); len(d.rows()) < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows written, want 5", len(d.rows()))
		}
	}
}

// TestCloseWrites: Close writes what is left.
func TestCloseWrites(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	s := newSink(t, d.st, options(nil))
	s.Record(revoke("conn-a", time.Now()))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(d.rows()); n != 1 {
		t.Fatalf("%d rows after Close, want 1", n)
	}
}

// TestWhatTheRequestChose: a target, workspace or actor is kept as valid
// text of at most 256 bytes, whatever the request sent (a NUL or invalid
// UTF-8 would make the database refuse the whole write).
func TestWhatTheRequestChose(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	s := newSink(t, d.st, options(nil))
	long := strings.Repeat("é", 1000)
	s.Record(natsx.AuditRecord{At: time.Now(), Caller: gateway, Subject: messages.SubjectTokensGet,
		Target: "conn\x00-\xff-" + long, Workspace: long, Actor: "a\x00b"})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := d.rows()[0]
	for _, v := range []string{e.Target, e.WorkspaceID, e.ActorKeyID} {
		if len(v) > 256 || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Errorf("kept %q", v)
		}
	}
	if !strings.HasPrefix(e.Target, "conn-\uFFFD-é") || e.ActorKeyID != "ab" {
		t.Errorf("target %q, actor %q", e.Target, e.ActorKeyID)
	}
}

// BenchmarkRecord is the cost the sink adds to a tokens.get answered from
// the cache: one record of a group already collected.
func BenchmarkRecord(b *testing.B) {
	s := newSink(b, nil, options(nil))
	r := tokensGet("0190b8f0-5d9e-7c41-a3c2-52b1f0e8d3a7", time.Now(), "")
	b.ReportAllocs()
	for b.Loop() {
		s.Record(r)
	}
}

// BenchmarkRecordWorkingSet: releases spread over 1,000 connections.
func BenchmarkRecordWorkingSet(b *testing.B) {
	s := newSink(b, nil, options(nil))
	recs := make([]natsx.AuditRecord, 1000)
	for i := range recs {
		recs[i] = tokensGet(fmt.Sprintf("0190b8f0-5d9e-7c41-a3c2-%012d", i), time.Now(), "")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Record(recs[i%len(recs)])
		i++
	}
}

// BenchmarkRecordParallel: every core recording at once (the pool's
// goroutines, several subscriptions).
func BenchmarkRecordParallel(b *testing.B) {
	s := newSink(b, nil, options(nil))
	r := tokensGet("0190b8f0-5d9e-7c41-a3c2-52b1f0e8d3a7", time.Now(), "")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record(r)
		}
	})
}
