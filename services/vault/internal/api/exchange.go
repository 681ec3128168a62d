package api

import (
	"context"
	"errors"
	"slices"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type exchangeStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	GetClient(ctx context.Context, providerID string) (store.Client, error)
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
}

// vault.exchange: redeem the authorization code, verify the id_token, seal
// the tokens, activate the connection. A provider refusal fails a pending
// connection; a re-consent of a working connection leaves it as it was.
func (h *Handlers) exchange(ctx context.Context, r messages.VaultExchange) (messages.Connection, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return messages.Connection{}, err
	}
	if r.Code == "" || r.CodeVerifier == "" || r.RedirectURI == "" {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "code, code_verifier and redirect_uri are required")
	}
	if len(r.CallbackParams) > messages.MaxCallbackParams {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "at most %d callback_params", messages.MaxCallbackParams)
	}
	if err := checkConfirmation(r.Confirm, h.Now()); err != nil {
		return messages.Connection{}, err
	}
	c, err := h.Store.GetConnection(ctx, r.ConnectionID)
	if err != nil {
		return messages.Connection{}, err
	}
	if c.Status == messages.StatusRevoked {
		return messages.Connection{}, store.ErrRevoked
	}
	cl, err := h.Store.GetClient(ctx, c.ProviderID)
	if err != nil {
		return messages.Connection{}, err
	}
	if cl.Type == messages.ProviderStatic {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "provider %s issues static credentials, not authorization codes", cl.ProviderID)
	}
	if cl.Type == messages.ProviderOIDC && slices.Contains(c.RequestedScopes, "openid") && r.Nonce == "" {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "nonce is required for an OpenID Connect provider")
	}
	toks, xerr := h.Provider.Exchange(ctx, cl, provider.ExchangeRequest{
		Code: r.Code, Verifier: r.CodeVerifier, RedirectURI: r.RedirectURI, Nonce: r.Nonce, Scopes: c.RequestedScopes,
	})
	if xerr != nil {
		h.Log.Warn("code exchange failed", "connection_id", c.ID, "provider_id", c.ProviderID, "err", xerr)
		if _, err := h.failPending(ctx, c.ID, exchangeFailure(xerr)); err != nil {
			h.Log.Error("cannot record a failed exchange", "connection_id", c.ID, "err", err)
		}
		return messages.Connection{}, xerr
	}
	toks.Config = callbackConfig(toks.Config, cl.Quirks, r.CallbackParams)
	c, err = h.Store.WithLock(ctx, c.ID, func(ctx context.Context, l *store.Locked) error {
		if l.Conn.Status == messages.StatusRevoked {
			return store.ErrRevoked
		}
		if r.Confirm != nil {
			return l.Stage(ctx, toks, *r.Confirm)
		}
		return l.Activate(ctx, toks)
	})
	if err != nil {
		return messages.Connection{}, err
	}
	return c.Message(), nil
}

// maxCallbackValue bounds a config value taken from the callback.
const maxCallbackValue = 2048

// callbackConfig adds to cfg the callback's parameters that the provider's
// quirks keep as config (QuickBooks realmId); every other parameter is
// dropped unread.
func callbackConfig(cfg map[string]string, q *messages.Quirks, params map[string]string) map[string]string {
	if q == nil {
		return cfg
	}
	for key, param := range q.ConfigFromCallback {
		v, ok := params[param]
		if !ok || v == "" || len(v) > maxCallbackValue {
			continue
		}
		if cfg == nil {
			cfg = map[string]string{}
		}
		cfg[key] = v
	}
	return cfg
}

// exchangeFailure is the reason recorded for a failed exchange: the
// provider's error code, and a message without secrets or provider text.
func exchangeFailure(err error) messages.Reason {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		return messages.Reason{Code: "exchange_failed", Message: "The authorization code could not be redeemed."}
	}
	switch {
	case pe.Kind == provider.InvalidIDToken:
		return messages.Reason{Code: "invalid_id_token", Message: "The provider's id_token failed verification."}
	case pe.Kind == provider.Transient:
		return messages.Reason{Code: "provider_unavailable", Message: "The provider did not answer while the authorization code was redeemed."}
	case pe.Code != "":
		return messages.Reason{Code: pe.Code, Message: "The provider refused to redeem the authorization code."}
	default:
		return messages.Reason{Code: "token_error", Message: "The provider refused to redeem the authorization code."}
	}
}
