package vault

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"time"

	"github.com/nexus-broker/nexus/messages"

	"github.com/nexus-broker/nexus/services/vault/internal/api"
	"github.com/nexus-broker/nexus/services/vault/internal/guard"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// providers is the provider client in the vault's own terms: stored
// registrations in, tokens to store out. It is the one place where the
// provider package, which knows nothing of storage, meets the store, and
// where every call goes through the guard (a bound on the calls in flight
// per provider and a circuit breaker per provider).
type providers struct {
	c      *provider.Client
	guard  *guard.Guard
	health healthStore
	log    *slog.Logger
	// metrics counts and times refreshes per provider (nil: not counted).
	metrics *refreshMetrics
}

// healthStore records whether a provider's token endpoint accepts the
// broker's client.
type healthStore interface {
	MarkMisconfigured(ctx context.Context, c store.Client, code string) (bool, error)
	MarkHealthy(ctx context.Context, c store.Client) (bool, error)
}

var (
	_ api.Provider     = providers{}
	_ refresh.Provider = providers{}
)

func (p providers) Exchange(ctx context.Context, cl store.Client, r provider.ExchangeRequest) (store.Tokens, error) {
	var t provider.Tokens
	err := p.guard.Do(ctx, cl.ProviderID, "token", func() (err error) {
		t, err = p.c.Exchange(ctx, registration(cl), r)
		return err
	})
	p.noteHealth(ctx, cl, err)
	if err == nil && cl.Quirks != nil && cl.Quirks.ConfigFromRequest != nil {
		t.Config = p.requestedConfig(ctx, cl, t)
	}
	return storedTokens(t, cl), err
}

// requestedConfig adds to t's config what the provider's config request
// answers. The consent does not fail for it: the connection works without,
// and the warning says what the operator should look at.
func (p providers) requestedConfig(ctx context.Context, cl store.Client, t provider.Tokens) map[string]string {
	var got map[string]string
	err := p.guard.Do(ctx, cl.ProviderID, "config", func() (err error) {
		got, err = p.c.LookupConfig(ctx, registration(cl), t.Access)
		return err
	})
	if err != nil {
		p.log.Warn("the provider's config request failed; the connection has no config from it", "provider_id", cl.ProviderID, "err", err)
		return t.Config
	}
	out := maps.Clone(t.Config)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, got)
	return out
}

// Refresh starts only with a whole provider timeout left: a provider that
// rotates the refresh token and answers after the caller's deadline would
// leave the new token unsaved.
func (p providers) Refresh(ctx context.Context, cl store.Client, refreshToken secret.Value) (store.Tokens, error) {
	start := time.Now()
	var t provider.Tokens
	err := p.guard.DoWithin(ctx, cl.ProviderID, "token", provider.DefaultTimeout, func() (err error) {
		t, err = p.c.Refresh(ctx, registration(cl), refreshToken)
		return err
	})
	p.metrics.observe(cl.ProviderID, start, err)
	p.noteHealth(ctx, cl, err)
	return storedTokens(t, cl), err
}

func (p providers) Revoke(ctx context.Context, cl store.Client, token secret.Value, hint string) error {
	return p.guard.Do(ctx, cl.ProviderID, "revocation", func() error {
		return p.c.Revoke(ctx, registration(cl), token, hint)
	})
}

// noteHealth marks the provider misconfigured when its token endpoint
// refused the client itself, and healthy again when a token request of a
// misconfigured one succeeds. Failing to record it changes nothing of the
// call's outcome.
func (p providers) noteHealth(ctx context.Context, cl store.Client, err error) {
	var (
		changed bool
		herr    error
	)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case errors.Is(err, provider.ErrMisconfigured):
		var pe *provider.Error
		errors.As(err, &pe)
		changed, herr = p.health.MarkMisconfigured(ctx, cl, pe.Code)
		if changed {
			p.log.Error("the provider's token endpoint refused the broker's client: fix its registration", "provider_id", cl.ProviderID, "code", pe.Code)
		}
	case err == nil && cl.Health != nil:
		changed, herr = p.health.MarkHealthy(ctx, cl)
		if changed {
			p.log.Info("the provider's token endpoint accepts the broker's client again", "provider_id", cl.ProviderID)
		}
	}
	if herr != nil {
		p.log.Warn("recording the provider's health failed", "provider_id", cl.ProviderID, "err", herr)
	}
}

func registration(cl store.Client) provider.Registration {
	var q messages.Quirks
	if cl.Quirks != nil {
		q = *cl.Quirks
	}
	return provider.Registration{
		Type:               cl.Type,
		ClientID:           cl.ClientID,
		ClientSecret:       cl.ClientSecret,
		AuthMethod:         cl.ClientAuthMethod,
		Issuer:             cl.Issuer,
		TokenEndpoint:      cl.TokenEndpoint,
		RevocationEndpoint: cl.RevocationEndpoint,
		JWKSURI:            cl.JWKSURI,
		DefaultLifetime:    cl.TokenLifetime(),
		Quirks:             q,
	}
}

func storedTokens(t provider.Tokens, cl store.Client) store.Tokens {
	var keepAlive time.Duration
	if cl.Quirks != nil {
		keepAlive = time.Duration(cl.Quirks.KeepAliveSeconds) * time.Second
	}
	return store.Tokens{
		KeepAlive:      keepAlive,
		Access:         t.Access,
		Refresh:        t.Refresh,
		TokenType:      t.TokenType,
		ExpiresAt:      t.ExpiresAt,
		RefreshExpires: t.RefreshExpires,
		Scopes:         t.Scopes,
		Config:         t.Config,
	}
}
