package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/pg"
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

// RecordReconsent records that a (an operator) began a re-consent of conn:
// a link to hand its user, made in the console. The vault's record of the
// consent names the service that asked for it (admin); this one names the
// operator.
func (s *Store) RecordReconsent(ctx context.Context, a Audit, conn messages.Connection) error {
	_, err := s.pool.Exec(ctx, `insert into admin.audit (at, principal, key_id, action, provider_id, provider_name, connection_id, workspace_id)
		values ($1, $2, $3, $4, $5, $6, $7, $8)`,
		s.clock(), a.Principal, a.KeyID, messages.SubjectHandshakeBegin, conn.ProviderID, conn.Provider, conn.ConnectionID, conn.WorkspaceID)
	return err
}

// AuditFilter selects audit records; zero fields select everything.
type AuditFilter struct {
	Since, Until time.Time // at >= Since, at < Until
	Principal    string
	KeyID        string
	Target       string // a provider's id or name, or a connection's id
	WorkspaceID  string // the workspace of a connection's records
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
	var w pg.Where
	if !f.Since.IsZero() {
		w.Add("at >= " + w.Arg(f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		w.Add("at < " + w.Arg(f.Until.UTC()))
	}
	w.Equal("principal", f.Principal)
	w.Equal("key_id", f.KeyID)
	w.Equal("action", f.Action)
	w.Equal("workspace_id", f.WorkspaceID)
	if f.Target != "" {
		a := w.Arg(f.Target)
		// What a record names as its target: a re-consent its connection,
		// a provider change its provider.
		w.Add("(connection_id = " + a + " or (connection_id = '' and (provider_id = " + a + " or provider_name = " + a + ")))")
	}
	if f.BeforeID != "" {
		w.Add("(at, id) < (" + w.Arg(f.BeforeAt.UTC()) + ", " + w.Arg(f.BeforeID) + "::uuid)")
	}
	q := "select id::text, at, principal, key_id, action, provider_id, provider_name, changed, connection_id, workspace_id from admin.audit" +
		w.String() + " order by at desc, id desc limit " + w.Arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, w.Args...)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (messages.AuditRecord, error) {
		var a messages.AuditRecord
		var connectionID string
		err := r.Scan(&a.ID, &a.At, &a.Principal, &a.KeyID, &a.Action, &a.Target, &a.ProviderName, &a.Changed, &connectionID, &a.WorkspaceID)
		if connectionID != "" {
			a.Target = connectionID // a re-consent names its connection, as the vault's records do
		}
		a.At = a.At.UTC()
		a.LastAt, a.Count, a.Outcome = a.At, 1, messages.OutcomeOK
		return a, err
	})
	if err != nil {
		return nil, false, err
	}
	page, more := pg.Page(out, f.Limit)
	return page, more, nil
}
