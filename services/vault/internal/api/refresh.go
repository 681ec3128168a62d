package api

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type refreshStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	ClaimRefresh(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.DueConnection, error)
	DeferRefresh(ctx context.Context, id string, until time.Time) error
	ClearRefreshDue(ctx context.Context, id string) error
}

// Bounds of the refresher's and the relay's claims.
const (
	MaxClaimLimit   = 1000
	MaxLeaseSeconds = 3600
	maxOwnerLength  = 200
	maxDefer        = 30 * 24 * time.Hour
)

func validateClaim(owner string, limit, leaseSeconds int) error {
	switch {
	case owner == "" || len(owner) > maxOwnerLength:
		return messages.Errorf(messages.CodeInvalidRequest, "owner is required (at most %d characters)", maxOwnerLength)
	case limit < 1 || limit > MaxClaimLimit:
		return messages.Errorf(messages.CodeInvalidRequest, "limit must be between 1 and %d", MaxClaimLimit)
	case leaseSeconds < 1 || leaseSeconds > MaxLeaseSeconds:
		return messages.Errorf(messages.CodeInvalidRequest, "lease_seconds must be between 1 and %d", MaxLeaseSeconds)
	}
	return nil
}

// vault.refresh.claim: lease the most urgent due connections to the caller.
func (h *Handlers) claimRefresh(ctx context.Context, r messages.RefreshClaim) (messages.RefreshClaimReply, error) {
	if err := validateClaim(r.Owner, r.Limit, r.LeaseSeconds); err != nil {
		return messages.RefreshClaimReply{}, err
	}
	due, err := h.Store.ClaimRefresh(ctx, r.Owner, r.Limit, time.Duration(r.LeaseSeconds)*time.Second)
	if err != nil {
		return messages.RefreshClaimReply{}, err
	}
	out := messages.RefreshClaimReply{Items: make([]messages.RefreshItem, 0, len(due)),
		RunTimeoutSeconds: int(math.Ceil(refresh.CallBudget.Seconds()))}
	for _, d := range due {
		it := messages.RefreshItem{ConnectionID: d.ID, ProviderID: d.ProviderID, TokenVersion: d.TokenVersion, Attempts: d.Attempts}
		if d.ExpiresAt != nil {
			it.ExpiresAt = *d.ExpiresAt
		}
		out.Items = append(out.Items, it)
	}
	return out, nil
}

// vault.refresh.run: refresh one claimed connection unless another caller
// already did (its token version moved). The reply says what happened and
// never carries a token.
func (h *Handlers) runRefresh(ctx context.Context, r messages.RefreshRun) (messages.RefreshRunReply, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return messages.RefreshRunReply{}, err
	}
	c, err := h.Store.GetConnection(ctx, r.ConnectionID)
	if err != nil {
		return messages.RefreshRunReply{}, err
	}
	reply := messages.RefreshRunReply{ConnectionID: c.ID}
	// Static credentials do not expire (and are never scheduled).
	if c.Status != messages.StatusActive || c.TokenVersion != r.TokenVersion || c.ProviderType == messages.ProviderStatic {
		reply.Outcome = messages.RefreshNotNeeded
		return reply, nil
	}
	res, err := h.Refresher.Refresh(ctx, c.ID, c.ProviderID, refresh.Need{Force: true, SeenVersion: r.TokenVersion})
	var (
		na     *store.NotActiveError
		pe     *provider.Error
		failed *refresh.FailedError
	)
	switch {
	case err == nil && !res.Refreshed:
		reply.Outcome = messages.RefreshNotNeeded // the version moved while we waited for the lock
	case err == nil:
		reply.Outcome = messages.RefreshDone
		reply.ExpiresAt = res.Conn.ExpiresAt
	case errors.As(err, &na) && na.Cause != nil:
		reply.Outcome = messages.RefreshAttention
		reply.Reason = &messages.Reason{Code: "attention_required", Message: "the connection needs its user to connect again"}
		if a := na.Conn.Attention; a != nil {
			reply.Reason = &messages.Reason{Code: a.Code, Message: a.Message}
		}
	case errors.As(err, &na):
		reply.Outcome = messages.RefreshNotNeeded // revoked, or moved to attention_required by another caller
	case errors.Is(err, refresh.ErrNoRefreshToken):
		// Nothing to renew with; stop scheduling it (tokens.get still
		// serves the access token until it expires).
		if err := h.Store.ClearRefreshDue(ctx, c.ID); err != nil {
			return messages.RefreshRunReply{}, err
		}
		reply.Outcome = messages.RefreshNotNeeded
	case errors.As(err, &failed) && errors.As(err, &pe):
		// Timeouts, 5xx and 429, a refusal not (yet) about the grant, or
		// the client itself refused (invalid_client: the provider is
		// marked misconfigured for an operator). None is the user's to
		// fix: the connection stays active and the refresher backs off.
		// The refresh counted the attempt under the row lock.
		reply.Outcome = messages.RefreshTransient
		reply.Attempts = failed.Attempts
		reply.RetryAfterSeconds = int(math.Ceil(max(pe.RetryAfter, failed.RetryAt.Sub(h.Now())).Seconds()))
		if pe.Kind != provider.Transient {
			h.Log.Warn("background refresh refused by the provider; retrying with backoff", "connection_id", c.ID, "provider_id", c.ProviderID, "err", pe)
			reply.Reason = &messages.Reason{Code: "provider_error", Message: pe.Error()}
		}
	case errors.As(err, &pe) && pe.Kind == provider.Transient:
		// Not tried: the guard's bound or breaker, or another refresh of
		// this connection that did not finish in time. Nothing was counted.
		reply.Outcome = messages.RefreshTransient
		reply.Attempts = max(c.RefreshAttempts, 1)
		reply.RetryAfterSeconds = int(math.Ceil(pe.RetryAfter.Seconds()))
	default:
		return messages.RefreshRunReply{}, err
	}
	return reply, nil
}

// vault.refresh.defer: the refresher's backoff after a transient failure.
func (h *Handlers) deferRefresh(ctx context.Context, r messages.RefreshDefer) (struct{}, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return struct{}{}, err
	}
	if r.Until.IsZero() || r.Until.After(h.Now().Add(maxDefer)) {
		return struct{}{}, messages.Errorf(messages.CodeInvalidRequest, "until is required and at most %s ahead", maxDefer)
	}
	return struct{}{}, h.Store.DeferRefresh(ctx, r.ConnectionID, r.Until)
}
