package store

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// Audit is who makes a change, and what it changes: written with the
// change, in its transaction.
type Audit struct {
	Principal, KeyID string
	Action           string   // the subject: messages.SubjectProviders{Create,Update,Delete}
	Changed          []string // field names, never values
}

// writeAudit records a, a change to provider p at time at, in tx.
func writeAudit(ctx context.Context, tx pgx.Tx, a Audit, p messages.Provider, at time.Time) error {
	changed := a.Changed
	if changed == nil {
		changed = []string{}
	}
	_, err := tx.Exec(ctx, `insert into admin.audit (at, principal, key_id, action, provider_id, provider_name, changed)
		values ($1, $2, $3, $4, $5, $6, $7)`, at, a.Principal, a.KeyID, a.Action, p.ID, p.Name, changed)
	return err
}

// AuditFilter selects audit records; zero fields select everything.
type AuditFilter struct {
	Since, Until time.Time // at >= Since, at < Until
	Principal    string
	KeyID        string
	Target       string // a provider's id or name
	Action       string
	// BeforeAt and BeforeID (a UUID): only records after this one in list
	// order (at, id descending), the cursor of the previous page.
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// ListAudit returns up to f.Limit records, newest first, and whether more
// follow.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]messages.AuditRecord, bool, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(f.Until.UTC()))
	}
	for _, c := range []struct{ col, v string }{{"principal", f.Principal}, {"key_id", f.KeyID}, {"action", f.Action}} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if f.Target != "" {
		a := arg(f.Target)
		where = append(where, "(provider_id = "+a+" or provider_name = "+a+")")
	}
	if f.BeforeID != "" {
		where = append(where, "(at, id) < ("+arg(f.BeforeAt.UTC())+", "+arg(f.BeforeID)+"::uuid)")
	}
	q := "select id::text, at, principal, key_id, action, provider_id, provider_name, changed from admin.audit"
	if len(where) > 0 {
		q += " where " + strings.Join(where, " and ")
	}
	q += " order by at desc, id desc limit " + arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (messages.AuditRecord, error) {
		var a messages.AuditRecord
		err := r.Scan(&a.ID, &a.At, &a.Principal, &a.KeyID, &a.Action, &a.Target, &a.ProviderName, &a.Changed)
		a.At = a.At.UTC()
		a.LastAt, a.Count, a.Outcome = a.At, 1, messages.OutcomeOK
		return a, err
	})
	if err != nil {
		return nil, false, err
	}
	if len(out) > f.Limit {
		return out[:f.Limit], true, nil
	}
	return out, false, nil
}
