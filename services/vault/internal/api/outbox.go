package api

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

type outboxStore interface {
	ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]messages.Event, error)
	AckOutbox(ctx context.Context, ids []string) (int, error)
}

// vault.outbox.claim: lease the oldest unpublished lifecycle events to a
// relay. Another relay gets them only once the lease has run out.
func (h *Handlers) claimOutbox(ctx context.Context, req micro.Request) (any, error) {
	var r messages.OutboxClaim
	if err := natsx.Decode(req.Data(), &r); err != nil {
		return nil, err
	}
	if err := validateClaim(r.Owner, r.Limit, r.LeaseSeconds); err != nil {
		return nil, err
	}
	evs, err := h.Store.ClaimOutbox(ctx, r.Owner, r.Limit, time.Duration(r.LeaseSeconds)*time.Second)
	if err != nil {
		return nil, err
	}
	return messages.OutboxClaimReply{Events: evs}, nil
}

// vault.outbox.ack: JetStream stored these events; never hand them out again.
func (h *Handlers) ackOutbox(ctx context.Context, req micro.Request) (any, error) {
	var r messages.OutboxAck
	if err := natsx.Decode(req.Data(), &r); err != nil {
		return nil, err
	}
	if len(r.IDs) > MaxClaimLimit {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "at most %d ids per ack", MaxClaimLimit)
	}
	n, err := h.Store.AckOutbox(ctx, r.IDs)
	if err != nil {
		return nil, err
	}
	return messages.OutboxAckReply{Acked: n}, nil
}
