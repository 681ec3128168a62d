// Package audit records who asked the vault for what, and what came of it:
// natsx gives the sink a record of every request to an endpoint marked
// natsx.Audited once it is answered, refusals included, and the sink writes
// them to vault.audit (store.InsertAudit). Credential releases
// (v1.tokens.get, tens of thousands a second) are counted in memory by who
// asked, what, for which connection and workspace, and with what outcome,
// and written as one row per group every few seconds; every other request
// is a row of its own.
//
// Nothing here blocks a request: Record takes a lock for a map update, and
// rows are written by the sink's own goroutine (Run). While the database
// does not take them they wait, up to a bound, and are tried again; what
// does not fit is dropped, counted in nexus_vault_audit_dropped_total and
// reported in a warning.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Writer is where the sink writes: the store.
type Writer interface {
	InsertAudit(ctx context.Context, entries []store.AuditEntry) error
}

var _ Writer = (*store.Store)(nil)

// Defaults of Options.
const (
	DefaultInterval   = 2 * time.Second
	DefaultFlushAt    = 10000
	DefaultMaxPending = 50000
)

// Options tune a Sink; the zero value gives the defaults.
type Options struct {
	// Aggregate are the subjects whose requests are counted by group
	// instead of written one by one (v1.tokens.get).
	Aggregate []string
	// Interval is how often what was collected is written (DefaultInterval).
	Interval time.Duration
	// FlushAt is how many groups and rows collected make the sink write at
	// once, before its interval (DefaultFlushAt).
	FlushAt int
	// MaxPending bounds both what is collected and what waits for the
	// database (DefaultMaxPending each); a record that does not fit is
	// dropped and counted.
	MaxPending int
	// Registerer receives the sink's counters; nil for none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// key is what makes two requests the same for an aggregate.
type key struct {
	principal, keyID, actor string
	action, target, ws      string
	code                    messages.ErrorCode
}

// group is the requests of one key since the last write.
type group struct {
	first, last time.Time
	count       int64
}

func (g *group) merge(o *group) {
	if o.first.Before(g.first) {
		g.first = o.first
	}
	if o.last.After(g.last) {
		g.last = o.last
	}
	g.count += o.count
}

// place is what a request named.
type place struct{ target, ws string }

// collected is a group with its key, in the collection.
type collected struct {
	key
	group
}

// row is a request written on its own.
type row struct {
	key
	at time.Time
}

// Sink collects audit records and writes them.
type Sink struct {
	w          Writer
	log        *slog.Logger
	aggregate  []string // read-only after New
	interval   time.Duration
	flushAt    int
	maxPending int
	kick       chan struct{}
	dropped    prometheus.Counter
	written    prometheus.Counter
	// unreported counts drops not yet in a warning.
	unreported atomic.Int64

	mu sync.Mutex
	// groups are by what the request chose first (target and workspace):
	// hashing two strings instead of the whole key halves the cost of a
	// record, and what is left to tell apart (the keys that asked, the
	// outcomes) is bounded by the configuration, not by the callers.
	groups map[place][]*collected
	rows   []row
	n      int // groups and rows collected

	// flushMu serialises writes; the fields below belong to its holder.
	flushMu  sync.Mutex
	pending  map[key]*group
	pendRows []row
	lastErr  error
	failing  bool
	lastWarn time.Time
}

// New returns a sink writing to w. Start its Run, and Close it after the
// endpoints have stopped.
func New(w Writer, o Options) (*Sink, error) {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FlushAt <= 0 {
		o.FlushAt = DefaultFlushAt
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.FlushAt > o.MaxPending {
		o.FlushAt = o.MaxPending
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		w: w, log: o.Log, aggregate: o.Aggregate, interval: o.Interval, flushAt: o.FlushAt, maxPending: o.MaxPending,
		kick: make(chan struct{}, 1),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_vault_audit_dropped_total",
			Help: "Requests to audited endpoints whose audit record was lost: the database did not take it and the sink's buffer was full.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_vault_audit_rows_written_total",
			Help: "Rows written to vault.audit (one per request, or per group of identical credential releases).",
		}),
		groups:  map[place][]*collected{},
		pending: map[key]*group{},
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.dropped, s.written} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register audit metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Record takes one request's record (natsx.ServiceConfig.Audit). It runs on
// the goroutine that answered, inline on the subscription for tokens.get's
// cache hits: a lock, a map lookup, no I/O, no allocation for a group
// already seen.
func (s *Sink) Record(r natsx.AuditRecord) {
	k := key{
		principal: r.Caller.Principal, keyID: r.Caller.KeyID, actor: clean(r.Actor),
		action: r.Subject, target: clean(r.Target), ws: clean(r.Workspace), code: r.Code,
	}
	agg := slices.Contains(s.aggregate, r.Subject)
	s.mu.Lock()
	var same []*collected
	if agg {
		same = s.groups[place{k.target, k.ws}]
		for _, c := range same {
			if c.key == k {
				if r.At.After(c.last) {
					c.last = r.At
				}
				c.count++
				s.mu.Unlock()
				return
			}
		}
	}
	if s.n >= s.maxPending {
		s.mu.Unlock()
		s.drop(1)
		return
	}
	if agg {
		s.groups[place{k.target, k.ws}] = append(same, &collected{key: k, group: group{first: r.At, last: r.At, count: 1}})
	} else {
		s.rows = append(s.rows, row{key: k, at: r.At})
	}
	s.n++
	early := s.n == s.flushAt
	s.mu.Unlock()
	if early {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Sink) drop(requests int64) {
	s.dropped.Add(float64(requests))
	s.unreported.Add(requests)
}

// maxField bounds what a record keeps of a value the request chose (a
// target, a workspace, an actor): the body may be up to 64 KiB, and groups
// are kept in memory.
const maxField = 256

// clean makes a request's value fit a text column: valid UTF-8 (the
// database refuses anything else), no NUL, at most maxField bytes.
func clean(v string) string {
	if len(v) <= maxField && utf8.ValidString(v) && strings.IndexByte(v, 0) < 0 {
		return v
	}
	v = strings.ReplaceAll(strings.ToValidUTF8(v, "\uFFFD"), "\x00", "")
	if len(v) > maxField {
		n := maxField
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	return v
}
