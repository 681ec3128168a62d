package api

import (
	"context"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

type outboxStore interface {
	ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]messages.Event, []messages.ProviderEvent, error)
	AckOutbox(ctx context.Context, ids []string) (int, error)
}

// vault.outbox.claim: lease the oldest unpublished lifecycle events to a
// relay. Another relay gets them only once the lease has run out.
func (h *Handlers) claimOutbox(ctx context.Context, r messages.OutboxClaim) (messages.OutboxClaimReply, error) {
	if err := validateClaim(r.Owner, r.Limit, r.LeaseSeconds); err != nil {
		return messages.OutboxClaimReply{}, err
	}
	evs, pevs, err := h.Store.ClaimOutbox(ctx, r.Owner, r.Limit, time.Duration(r.LeaseSeconds)*time.Second)
	if err != nil {
		return messages.OutboxClaimReply{}, err
	}
	return messages.OutboxClaimReply{Events: evs, ProviderEvents: pevs}, nil
}

// vault.outbox.ack: JetStream stored these events; never hand them out again.
func (h *Handlers) ackOutbox(ctx context.Context, r messages.OutboxAck) (messages.OutboxAckReply, error) {
	if len(r.IDs) > MaxClaimLimit {
		return messages.OutboxAckReply{}, messages.Errorf(messages.CodeInvalidRequest, "at most %d ids per ack", MaxClaimLimit)
	}
	n, err := h.Store.AckOutbox(ctx, r.IDs)
	if err != nil {
		return messages.OutboxAckReply{}, err
	}
	return messages.OutboxAckReply{Acked: n}, nil
}
