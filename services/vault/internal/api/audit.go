package api

import (
	"context"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type auditStore interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, bool, error)
}

// AuditLog is where the vault's audit records wait before they are written
// (internal/audit).
type AuditLog interface {
	Flush(ctx context.Context) error
}

// vault.audit.list: the vault's audit records, newest first, for admin's
// audit.list. What this replica has collected is written first, so the
// answer holds every request it has answered; other replicas' last few
// seconds follow at their next write.
func (h *Handlers) listAudit(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error) {
	if err := r.Validate(); err != nil {
		return messages.AuditListReply{}, err
	}
	f := store.AuditFilter{
		Since: r.Since, Until: r.Until, Principal: r.Principal, KeyID: r.KeyID, Target: r.Target,
		WorkspaceID: r.WorkspaceID, Action: r.Action, Limit: r.PageLimit(),
	}
	f.BeforeAt, f.BeforeID, _ = messages.DecodeAuditCursor(r.Cursor)
	if h.AuditLog != nil {
		// A failure is the sink's to report; the rows wait for its next write.
		_ = h.AuditLog.Flush(ctx)
	}
	entries, more, err := h.Store.ListAudit(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return messages.AuditListReply{}, messages.Errorf(messages.CodeInvalidRequest, "invalid audit list request: cursor is not a cursor from a previous page")
	}
	if err != nil {
		return messages.AuditListReply{}, err
	}
	out := messages.AuditListReply{Records: make([]messages.AuditRecord, 0, len(entries))}
	for _, e := range entries {
		out.Records = append(out.Records, e.Message())
	}
	if more {
		last := entries[len(entries)-1]
		out.NextCursor = messages.EncodeAuditCursor(last.At, last.ID)
	}
	return out, nil
}

// AuditTarget names the connection whose credentials a vault.static.store
// request brings (never the credentials).
func (r storeStaticRequest) AuditTarget() (string, string) { return r.ConnectionID, "" }
