package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/pg"
)

// AuditEntry is a row of vault.audit: a request to an audited endpoint, or
// Count identical ones answered from At to LastAt.
type AuditEntry struct {
	ID                           string
	At, LastAt                   time.Time
	Count                        int64
	Principal, KeyID, ActorKeyID string
	Action, Target, WorkspaceID  string
	// Outcome is "ok" or the reply's error code.
	Outcome string
}

// Message is the entry as audit.list answers it.
func (e AuditEntry) Message() messages.AuditRecord {
	return messages.AuditRecord{
		ID: e.ID, At: e.At, LastAt: e.LastAt, Count: e.Count,
		Principal: e.Principal, KeyID: e.KeyID, ActorKeyID: e.ActorKeyID,
		Action: e.Action, Target: e.Target, WorkspaceID: e.WorkspaceID, Outcome: e.Outcome,
	}
}

// ErrAuditRejected: the database refused audit entries for what they hold
// (not for being unreachable); writing them again would fail again.
var ErrAuditRejected = errors.New("store: audit entries rejected")

var auditColumns = []string{"id", "at", "last_at", "count", "principal", "key_id", "actor_key_id", "action", "target", "workspace_id", "outcome"}

// InsertAudit writes entries with one COPY: all of them or none.
func (s *Store) InsertAudit(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{Schema, "audit"}, auditColumns, pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
		e := entries[i]
		// The id goes as a UUID, not as its text: COPY is binary, and pgx
		// turns text into a uuid only after failing to encode it as one
		// (an error made and dropped per row, a third of the write's cost
		// when a working set of many connections is read).
		id, err := uuid.Parse(e.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: id %q is not a UUID", ErrAuditRejected, e.ID)
		}
		return []any{pgtype.UUID{Bytes: id, Valid: true}, e.At, e.LastAt, e.Count, e.Principal, e.KeyID, e.ActorKeyID, e.Action, e.Target, e.WorkspaceID, e.Outcome}, nil
	}))
	var pe *pgconn.PgError
	// Class 22 (data exception) and 23 (integrity constraint violation):
	// about the rows, not the database's state.
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
		return fmt.Errorf("%w: %v", ErrAuditRejected, err)
	}
	return err
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Since, Until time.Time // at >= Since, at < Until
	Principal    string
	KeyID        string // key_id or actor_key_id
	Target       string
	WorkspaceID  string
	Action       string
	// BeforeAt and BeforeID: only entries after this one in list order
	// (at, id descending), the cursor of the previous page.
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// ListAudit returns up to f.Limit entries, newest first, and whether more
// follow.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, bool, error) {
	var w pg.Where
	if !f.Since.IsZero() {
		w.Add("at >= " + w.Arg(f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		w.Add("at < " + w.Arg(f.Until.UTC()))
	}
	w.Equal("principal", f.Principal)
	w.Equal("target", f.Target)
	w.Equal("workspace_id", f.WorkspaceID)
	w.Equal("action", f.Action)
	if f.KeyID != "" {
		a := w.Arg(f.KeyID)
		w.Add("(key_id = " + a + " or actor_key_id = " + a + ")")
	}
	if f.BeforeID != "" {
		uid, ok := parseID(f.BeforeID)
		if !ok {
			return nil, false, fmt.Errorf("%w: cursor", ErrNotFound)
		}
		w.Add("(at, id) < (" + w.Arg(f.BeforeAt.UTC()) + ", " + w.Arg(uid) + ")")
	}
	q := "select id::text, at, last_at, count, principal, key_id, actor_key_id, action, target, workspace_id, outcome from vault.audit" +
		w.String() + " order by at desc, id desc limit " + w.Arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, w.Args...)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.LastAt, &e.Count, &e.Principal, &e.KeyID, &e.ActorKeyID, &e.Action, &e.Target, &e.WorkspaceID, &e.Outcome)
		e.At, e.LastAt = e.At.UTC(), e.LastAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, false, err
	}
	page, more := pg.Page(out, f.Limit)
	return page, more, nil
}

// DefaultAuditRetention is how long audit entries are kept unless
// AUDIT_RETENTION says otherwise.
const DefaultAuditRetention = 90 * 24 * time.Hour

// auditPruneBatch bounds each delete of PruneAudit.
const auditPruneBatch = 10000

// PruneAudit deletes the entries older than cutoff (by at), in batches of
// 10,000, and returns how many it deleted. It stops early when ctx ends.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `delete from vault.audit where id in (
			select id from vault.audit where at < $1 limit $2)`, cutoff.UTC(), auditPruneBatch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < auditPruneBatch {
			return total, nil
		}
	}
}
