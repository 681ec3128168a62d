// Package audit answers audit.list: admin's own records (operators'
// changes to providers, internal/store) merged with the vault's (credential
// releases, consents, revocations, reads of connections, refusals), newest
// first, paged with one keyset cursor over both.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/registry"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
)

// Store holds admin's own records.
type Store interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]messages.AuditRecord, bool, error)
}

// Vault holds the vault's records (vault.audit.list).
type Vault interface {
	ListAudit(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error)
}

var (
	_ Store = (*store.Store)(nil)
	_ Vault = registry.NATSVault{}
)

// vaultTimeout bounds the vault's answer.
const vaultTimeout = 10 * time.Second

// Log is the broker's audit log as operators read it.
type Log struct {
	store Store
	vault Vault
	log   *slog.Logger
}

// New returns the log over admin's store and the vault.
func New(st Store, v Vault, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{store: st, vault: v, log: log}
}

// List answers audit.list: one page of the records of both sources that
// the filters select, newest first. Both are read from the same position
// (the cursor) for a page each; the merged page is the first Limit of the
// two, and the next starts after its last record, wherever that came from.
// Without the vault's records the answer would mislead, so a vault that
// does not answer makes the request fail (unavailable).
func (l *Log) List(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error) {
	if err := r.Validate(); err != nil {
		return messages.AuditListReply{}, err
	}
	limit := r.PageLimit()
	r.Limit = limit
	// Of admin's records only re-consents name a workspace: a filter by
	// one selects those of its connections.
	f := store.AuditFilter{Since: r.Since, Until: r.Until, Principal: r.Principal, KeyID: r.KeyID, Target: r.Target, WorkspaceID: r.WorkspaceID, Action: r.Action, Limit: limit}
	f.BeforeAt, f.BeforeID, _ = messages.DecodeAuditCursor(r.Cursor)
	own, ownMore, err := l.store.ListAudit(ctx, f)
	if err != nil {
		return messages.AuditListReply{}, err
	}
	vctx, cancel := context.WithTimeout(ctx, vaultTimeout)
	defer cancel()
	theirs, err := l.vault.ListAudit(vctx, r)
	if err != nil {
		var me *messages.Error
		if errors.As(err, &me) && me.Code == messages.CodeInvalidRequest {
			return messages.AuditListReply{}, me
		}
		l.log.Warn("the vault's audit records could not be read", "err", err)
		return messages.AuditListReply{}, messages.Errorf(messages.CodeUnavailable, "the vault's audit records could not be read; try again")
	}
	merged := append(own, theirs.Records...)
	slices.SortFunc(merged, func(a, b messages.AuditRecord) int {
		if messages.AuditBefore(a, b) {
			return -1
		}
		return 1
	})
	more := ownMore || theirs.NextCursor != "" || len(merged) > limit
	if len(merged) > limit {
		merged = merged[:limit]
	}
	out := messages.AuditListReply{Records: merged}
	if out.Records == nil {
		out.Records = []messages.AuditRecord{}
	}
	if more {
		last := merged[len(merged)-1]
		out.NextCursor = messages.EncodeAuditCursor(last.At, last.ID)
	}
	return out, nil
}
