package api

import (
	"context"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type keysStore interface {
	KeysStatus(ctx context.Context) (store.KeysStatus, error)
}

// vault.keys.status: what is sealed under each key, for admin's keys.status.
// Key ids and counts only, never a value.
func (h *Handlers) keysStatus(ctx context.Context, _ messages.KeysStatusRequest) (messages.KeysStatus, error) {
	st, err := h.Store.KeysStatus(ctx)
	if err != nil {
		return messages.KeysStatus{}, err
	}
	out := messages.KeysStatus{
		NewestKeyID: st.Newest, CanaryKeyID: st.Canary, OlderFormatRows: st.OlderFormatRows,
		Keys: make([]messages.KeyStatus, 0, len(st.Keys)), Replicas: make([]messages.VaultReplica, 0, len(st.Replicas)),
		RotationComplete: st.RotationComplete(),
	}
	for _, k := range st.Keys {
		out.Keys = append(out.Keys, messages.KeyStatus{KeyID: k.KeyID, ActivatedAt: k.ActivatedAt, Rows: k.Rows, Total: k.Total()})
	}
	for _, r := range st.Replicas {
		out.Replicas = append(out.Replicas, messages.VaultReplica{ID: r.ID, SealingKeyID: r.SealingKeyID, KeyIDs: r.KeyIDs, StartedAt: r.StartedAt, SeenAt: r.SeenAt})
	}
	return out, nil
}
