package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

type tokenStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	GetWithTokens(ctx context.Context, id string) (store.Connection, store.Tokens, error)
}

// RateLimiter counts a Gateway key's request for a workspace, refusing it
// with rate_limited over a limit (shared/ratelimit).
type RateLimiter interface {
	Allow(ctx context.Context, keyID, workspaceID string) error
}

var _ RateLimiter = (*ratelimit.Limiter)(nil)

// MaxMinValidSeconds bounds min_valid_seconds: asking for more than a token
// usually lives would refresh on every request.
const MaxMinValidSeconds = 3600

func minValidity(v *int) (time.Duration, error) {
	if v == nil {
		return messages.DefaultMinValidSeconds * time.Second, nil
	}
	if *v < 0 || *v > MaxMinValidSeconds {
		return 0, messages.Errorf(messages.CodeInvalidRequest, "min_valid_seconds must be between 0 and %d", MaxMinValidSeconds)
	}
	return time.Duration(*v) * time.Second, nil
}

// getTokenFast is tokens.get's hot path, run inline on the subscription: a
// cached credential that meets min_valid_seconds is served without touching
// the database or starting a goroutine, opened into buf (natsx.FastEndpoint
// clears and reuses it once the reply is sent). Anything else (a miss, a
// token about to expire) goes to getToken in the pool.
func (h *Handlers) getTokenFast(ctx context.Context, r messages.TokenRequest, buf []byte) (json.RawMessage, bool, error) {
	minValid, err := minValidity(r.MinValidSeconds)
	if err != nil {
		return nil, true, err
	}
	if err := requireWorkspace(ctx, r.WorkspaceID); err != nil {
		return nil, true, err
	}
	now := h.Now() // the cache's clock too (vault.Start)
	e, ok := h.Cache.Lookup(r.ConnectionID, now, buf)
	if !ok {
		return nil, false, nil
	}
	if err := inWorkspace(e.WorkspaceID, r.WorkspaceID); err != nil {
		return nil, true, err
	}
	token := store.Connection{ExpiresAt: e.ExpiresAt, LastRefreshedAt: e.LastRefreshedAt}
	if !e.Static && !refresh.Satisfies(token, refresh.Need{MinValid: minValid}, now) {
		return nil, false, nil
	}
	return e.Reply, true, nil
}

// cacheReply caches what tokens.get serves for c, encoded once, and returns
// the encoded reply.
func (h *Handlers) cacheReply(snap cache.Snapshot, c store.Connection, cred messages.Credential) (json.RawMessage, error) {
	reply, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	h.Cache.Put(snap, cache.Entry{
		ConnectionID: c.ID, ProviderID: c.ProviderID, WorkspaceID: c.WorkspaceID,
		Static: c.ProviderType == messages.ProviderStatic, ExpiresAt: c.ExpiresAt, LastRefreshedAt: c.LastRefreshedAt,
		Reply: reply,
	})
	return reply, nil
}

// tokens.get off the fast path: the row is read, refreshed first if the
// token would expire within min_valid_seconds, and (when no refresh was
// needed) cached until the token expires (internal/cache).
func (h *Handlers) getToken(ctx context.Context, r messages.TokenRequest) (json.RawMessage, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return nil, err
	}
	if err := requireWorkspace(ctx, r.WorkspaceID); err != nil {
		return nil, err
	}
	minValid, err := minValidity(r.MinValidSeconds)
	if err != nil {
		return nil, err
	}
	need := refresh.Need{MinValid: minValid}
	now := h.Now()
	snap := h.Cache.Begin()
	c, t, err := h.Store.GetWithTokens(ctx, r.ConnectionID)
	if err != nil {
		return nil, err
	}
	if err := inWorkspace(c.WorkspaceID, r.WorkspaceID); err != nil {
		return nil, err
	}
	if err := c.Serveable(); err != nil {
		return nil, err
	}
	if c.ProviderType == messages.ProviderStatic {
		return h.serveStatic(ctx, snap, c, t)
	}
	if refresh.Satisfies(c, need, now) {
		return h.cacheReply(snap, c, credential(c, t.Access))
	}
	res, err := h.Refresher.Refresh(ctx, c.ID, c.ProviderID, need)
	if err != nil {
		return nil, err
	}
	return json.Marshal(credential(res.Conn, res.AccessToken))
}

// tokens.refresh: a forced refresh. Callers that arrive while one is under
// way (on any replica) share its result.
func (h *Handlers) refreshToken(ctx context.Context, r messages.TokenRequest) (*messages.Credential, error) {
	c, err := h.connection(ctx, r.ConnectionID, r.WorkspaceID)
	if err != nil {
		return nil, err
	}
	if c.ProviderType == messages.ProviderStatic {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "static credentials do not expire; there is nothing to refresh")
	}
	if err := c.Serveable(); err != nil {
		return nil, err
	}
	// Counted only for a refresh that may call the provider, in the
	// connection's own workspace (a cross-workspace key may name none).
	if h.RefreshLimit != nil {
		if err := h.RefreshLimit.Allow(ctx, natsx.CallerOf(ctx).KeyID, c.WorkspaceID); err != nil {
			return nil, err
		}
	}
	res, err := h.Refresher.Refresh(ctx, c.ID, c.ProviderID, refresh.Need{Force: true, SeenVersion: c.TokenVersion})
	if err != nil {
		return nil, err
	}
	cred := credential(res.Conn, res.AccessToken)
	return &cred, nil
}

// credential is what the Gateway gets: the access token and how to use it.
// Never a refresh token, id_token or client secret.
func credential(c store.Connection, access secret.Value) messages.Credential {
	tt := c.TokenType
	if tt == "" {
		tt = "Bearer"
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return messages.Credential{
		ConnectionID: c.ID,
		Provider:     c.ProviderName,
		AuthType:     messages.AuthOAuth2,
		TokenType:    tt,
		AccessToken:  access.Reveal(),
		Credentials:  map[string]any{},
		ExpiresAt:    c.ExpiresAt,
		Scopes:       scopes,
		Strategy:     messages.Strategy{Type: messages.StrategyOAuth2, Config: map[string]any{}},
		Config:       c.Config,
	}
}
