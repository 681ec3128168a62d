package api

import (
	"context"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/pg"
)

// ContractError is the one place where the vault's errors become the
// contract's (natsx.ServiceConfig.Errors). What it returns is shown to
// callers; anything unexpected is returned as it is, and natsx answers it as
// internal, its detail left to the log.
func (h *Handlers) ContractError(err error) error {
	var (
		me    *messages.Error
		na    *store.NotActiveError
		pe    *provider.Error
		use   *store.InUseError
		moved *store.MovedError
		inv   *static.InvalidError
		ver   *static.VerifyError
	)
	switch {
	case errors.As(err, &me):
		return me
	case errors.As(err, &na):
		if na.Conn.Status == messages.StatusAttentionRequired {
			msg := "the connection needs its user to connect again"
			if na.Conn.Attention != nil && na.Conn.Attention.Message != "" {
				msg = na.Conn.Attention.Message
			}
			return messages.Errorf(messages.CodeAttentionRequired, "%s", msg)
		}
		return messages.Errorf(messages.CodeNotActive, "the connection is %s", na.Conn.Status)
	case errors.As(err, &inv):
		return messages.Errorf(messages.CodeInvalidRequest, "%v", inv)
	case errors.As(err, &ver):
		if ver.Refused != nil {
			// The operator's to fix; to the person it is a service that
			// cannot be reached.
			return messages.Errorf(messages.CodeUnavailable, "%v", ver)
		}
		if ver.Transient {
			return messages.Errorf(messages.CodeUnavailable, "%v; try again later", ver)
		}
		return messages.Errorf(messages.CodeProviderError, "the credentials were not accepted: %v", ver)
	case errors.Is(err, store.ErrNotFound):
		return messages.Errorf(messages.CodeNotFound, "connection not found")
	case errors.Is(err, store.ErrProviderNotFound):
		return messages.Errorf(messages.CodeNotFound, "the provider is not registered with the vault")
	case errors.Is(err, store.ErrProviderMismatch):
		return messages.Errorf(messages.CodeInvalidRequest, "connection_id belongs to another provider")
	case errors.Is(err, store.ErrNoConfirmation):
		return messages.Errorf(messages.CodeNotActive, "no consent of this connection waits for confirmation (never asked for, already confirmed, or ended)")
	case errors.Is(err, store.ErrConfirmationExpired):
		return messages.Errorf(messages.CodeNotActive, "the consent was not confirmed in time; start a new one")
	case errors.Is(err, store.ErrConfirmationMismatch):
		return messages.Errorf(messages.CodeForbidden, "the confirmation value does not match the one given to the browser")
	case errors.Is(err, store.ErrRevoked):
		return messages.Errorf(messages.CodeNotActive, "the connection is revoked; start a new connection")
	case errors.As(err, &use):
		return messages.Errorf(messages.CodeInvalidRequest, "provider %s still has %d pending, active or attention_required connection(s); revoke them first", use.ProviderID, use.Connections)
	case errors.Is(err, store.ErrSecretRequired):
		return messages.Errorf(messages.CodeInvalidRequest, "the token or revocation endpoint moves to another origin: send client_secret again")
	case errors.As(err, &moved):
		return messages.Errorf(messages.CodeConflict, "the token or revocation endpoint moves to another origin while %d pending, active or attention_required connection(s) hold grants of the old one, whose refresh tokens would then go there: revoke them first, or register the new endpoint as a new provider", moved.Connections)
	case errors.Is(err, refresh.ErrNoRefreshToken):
		return messages.Errorf(messages.CodeInvalidRequest, "%v", refresh.ErrNoRefreshToken)
	case errors.As(err, &pe):
		switch pe.Kind {
		case provider.Transient:
			h.Log.Warn("provider unavailable", "err", pe)
			return messages.Errorf(messages.CodeUnavailable, "the provider did not answer (%v); try again later", pe)
		case provider.InvalidIDToken:
			return messages.Errorf(messages.CodeProviderError, "the provider's id_token failed verification")
		default:
			return messages.Errorf(messages.CodeProviderError, "%v", pe)
		}
	case errors.Is(err, keyring.ErrUnknownKey):
		// During a rotation, a vault that does not hold the key another one
		// sealed with: nothing was changed, and a vault that holds it can
		// answer (docs/ARCHITECTURE.md, invariants 2).
		h.Log.Warn("a sealed value is under a key this vault does not hold", "err", err)
		return messages.Errorf(messages.CodeUnavailable, "this vault replica cannot open the connection's secrets: they are sealed with a key it does not hold yet (a key rotation is under way); nothing was changed, try again")
	case errors.Is(err, context.DeadlineExceeded):
		return messages.Errorf(messages.CodeUnavailable, "the request timed out; try again")
	case pg.Unavailable(err):
		return messages.Errorf(messages.CodeUnavailable, "the vault's database did not answer; try again")
	}
	return err
}
