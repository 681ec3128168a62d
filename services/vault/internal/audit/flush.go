package audit

import (
	"context"
	"errors"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

const (
	// writeTimeout bounds one write of everything pending.
	writeTimeout = 10 * time.Second
	// warnEvery spaces the warnings about records not written or dropped.
	warnEvery = time.Minute
)

// Run writes what was collected every interval, and as soon as FlushAt
// groups and rows are waiting, until ctx ends.
func (s *Sink) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		_ = s.Flush(ctx)
	}
}

// Flush writes everything collected so far, with what an earlier write left
// waiting. On failure the rows wait for the next attempt (up to MaxPending;
// the rest are dropped), unless the database refused them for what they
// hold, which a retry would not change: then they are dropped.
func (s *Sink) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	groups, rows := s.groups, s.rows
	s.groups, s.rows, s.n = map[place][]*collected{}, nil, 0
	s.mu.Unlock()
	s.hold(groups, rows)

	var err error
	if len(s.pending)+len(s.pendRows) > 0 {
		err = s.write(ctx)
	}
	s.report(err)
	return err
}

// Close writes what is left; call it once the endpoints have stopped. What
// cannot be written then is lost, and counted.
func (s *Sink) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if lost := s.requests(); lost > 0 {
		s.drop(lost)
		s.pending, s.pendRows = map[key]*group{}, nil
		s.log.Warn("audit records lost at shutdown: the database did not take them", "requests", lost, "err", err)
	}
	return err
}

// hold adds what was collected to what waits for the database, within
// MaxPending; groups of a key already waiting merge with it.
func (s *Sink) hold(groups map[place][]*collected, rows []row) {
	for _, same := range groups {
		for _, c := range same {
			if p := s.pending[c.key]; p != nil {
				p.merge(&c.group)
				continue
			}
			if len(s.pending)+len(s.pendRows) >= s.maxPending {
				s.drop(c.count)
				continue
			}
			s.pending[c.key] = &c.group
		}
	}
	room := max(s.maxPending-len(s.pending)-len(s.pendRows), 0)
	if len(rows) > room {
		s.drop(int64(len(rows) - room))
		rows = rows[:room]
	}
	s.pendRows = append(s.pendRows, rows...)
}

// requests is how many requests the waiting rows stand for.
func (s *Sink) requests() int64 {
	n := int64(len(s.pendRows))
	for _, g := range s.pending {
		n += g.count
	}
	return n
}

// write writes everything waiting, in one statement.
func (s *Sink) write(ctx context.Context) error {
	entries := make([]store.AuditEntry, 0, len(s.pending)+len(s.pendRows))
	for k, g := range s.pending {
		e, err := entry(k, g.first, g.last, g.count)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	for _, r := range s.pendRows {
		e, err := entry(r.key, r.at, r.at, 1)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	err := s.w.InsertAudit(wctx, entries)
	if err == nil || errors.Is(err, store.ErrAuditRejected) {
		if err != nil {
			lost := s.requests()
			s.drop(lost)
			s.log.Error("the database refused audit records; they are dropped", "rows", len(entries), "requests", lost, "err", err)
		} else {
			s.written.Add(float64(len(entries)))
		}
		s.pending, s.pendRows = map[key]*group{}, nil
	}
	return err
}

// entry is the row of a key's requests from first to last.
func entry(k key, first, last time.Time, count int64) (store.AuditEntry, error) {
	id, err := store.NewID()
	if err != nil {
		return store.AuditEntry{}, err
	}
	outcome := messages.OutcomeOK
	if k.code != "" {
		outcome = string(k.code)
	}
	return store.AuditEntry{
		ID: id, At: first.UTC().Truncate(time.Microsecond), LastAt: last.UTC().Truncate(time.Microsecond), Count: count,
		Principal: k.principal, KeyID: k.keyID, ActorKeyID: k.actor,
		Action: k.action, Target: k.target, WorkspaceID: k.ws, Outcome: outcome,
	}, nil
}

// report logs, at most every warnEvery, that writes fail or records were
// dropped, and once that writes work again.
func (s *Sink) report(err error) {
	if err == nil && s.failing {
		s.failing = false
		s.log.Info("audit records are written again")
	}
	if err != nil {
		s.failing, s.lastErr = true, err
	}
	if !s.failing && s.unreported.Load() == 0 {
		return
	}
	now := time.Now()
	if now.Sub(s.lastWarn) < warnEvery {
		return
	}
	s.lastWarn = now
	dropped := s.unreported.Swap(0)
	if s.failing {
		s.log.Warn("audit records are not written: the database does not take them; they are tried again, and dropped when more wait than the sink holds",
			"waiting", s.requests(), "dropped", dropped, "err", s.lastErr)
		return
	}
	s.log.Warn("audit records dropped: more came in between two writes than the sink holds", "dropped", dropped)
}
