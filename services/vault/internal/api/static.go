package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type staticStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	GetClient(ctx context.Context, providerID string) (store.Client, error)
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
}

// MaxCredentialBytes bounds a static credentials object as submitted.
const MaxCredentialBytes = 16 << 10

// storeStaticRequest is messages.VaultStoreStatic with the credentials kept
// raw, so that numbers stay exact (static.Decode).
type storeStaticRequest struct {
	ConnectionID string                 `json:"connection_id"`
	Credentials  json.RawMessage        `json:"credentials"`
	Confirm      *messages.Confirmation `json:"confirm,omitempty"`
}

// LogValue keeps the credentials out of logs.
func (r storeStaticRequest) LogValue() slog.Value {
	return messages.VaultStoreStatic{ConnectionID: r.ConnectionID}.LogValue()
}

// vault.static.store: the credentials a user typed in the hosted form. They
// are checked against the provider's current schema and strategy, tried
// with the provider's verification request when it has one, sealed, and
// the connection becomes active (a first consent, or a re-consent that
// replaces the credentials).
func (h *Handlers) storeStatic(ctx context.Context, r storeStaticRequest) (messages.Connection, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return messages.Connection{}, err
	}
	if err := checkConfirmation(r.Confirm, h.Now()); err != nil {
		return messages.Connection{}, err
	}
	if len(r.Credentials) > MaxCredentialBytes {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "credentials must be at most %d KiB", MaxCredentialBytes>>10)
	}
	c, err := h.Store.GetConnection(ctx, r.ConnectionID)
	if err != nil {
		return messages.Connection{}, err
	}
	if err := storable(c); err != nil {
		return messages.Connection{}, err
	}
	cl, err := h.Store.GetClient(ctx, c.ProviderID)
	if err != nil {
		return messages.Connection{}, err
	}
	if cl.Type != messages.ProviderStatic {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "provider %s does not take static credentials", cl.ProviderName)
	}
	if cl.Strategy == nil || len(cl.CredentialSchema) == 0 {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "provider %s has no credential schema or strategy registered with the vault", cl.ProviderName)
	}
	if len(r.Credentials) == 0 || string(r.Credentials) == "null" {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "credentials is required (a JSON object)")
	}
	creds, err := static.Decode(r.Credentials)
	if err != nil {
		return messages.Connection{}, err
	}
	sch, hash, err := h.Schemas.Get(cl.CredentialSchema)
	if err != nil {
		return messages.Connection{}, fmt.Errorf("compile the credential schema of provider %s: %w", cl.ProviderID, err)
	}
	if err := static.Validate(sch, creds); err != nil {
		return messages.Connection{}, err
	}
	if err := static.Check(*cl.Strategy, creds); err != nil {
		return messages.Connection{}, err
	}
	if cl.Verification != nil {
		used, _ := static.Select(*cl.Strategy, creds)
		if err := h.Verifier.Verify(ctx, *cl.Verification, *cl.Strategy, used); err != nil {
			h.verificationFailed(c, err)
			return messages.Connection{}, err
		}
	}
	plain, err := json.Marshal(creds)
	if err != nil {
		return messages.Connection{}, err
	}
	config := static.Config(cl.CredentialSchema, *cl.Strategy, creds)
	c, err = h.Store.WithLock(ctx, c.ID, func(ctx context.Context, l *store.Locked) error {
		if err := storable(l.Conn); err != nil {
			return err
		}
		if r.Confirm != nil {
			return l.StageStatic(ctx, secret.Value(plain), hash, config, *r.Confirm)
		}
		if err := l.StoreStatic(ctx, secret.Value(plain), hash); err != nil {
			return err
		}
		return l.SetConfig(ctx, config)
	})
	if err != nil {
		return messages.Connection{}, err
	}
	h.Log.Info("static credentials stored", "connection_id", c.ID, "provider_id", c.ProviderID)
	return c.Message(), nil
}

// verificationFailed logs why the verification request did not accept
// the credentials. Nothing changes: a first consent stays pending, so the
// person can correct what they typed in the hosted form (the handshake
// bounds the attempts) until the consent's link expires; a re-consent leaves
// the working connection and its credentials as they were. The caller gets
// provider_error for a refusal and unavailable when the request got no
// usable answer (ContractError).
func (h *Handlers) verificationFailed(c store.Connection, err error) {
	var ve *static.VerifyError
	switch {
	case !errors.As(err, &ve) || ve.Transient:
		h.Log.Warn("verification request of static credentials got no usable answer", "connection_id", c.ID, "provider_id", c.ProviderID, "status", statusOf(ve))
	case ve.Refused != nil:
		// Where the URL resolves is for the operator's eyes (the log).
		h.Log.Error("verification request refused by the egress guard", "connection_id", c.ID, "provider_id", c.ProviderID, "err", ve.Refused)
	default:
		h.Log.Warn("static credentials failed verification", "connection_id", c.ID, "provider_id", c.ProviderID, "status", ve.Status)
	}
}

func statusOf(ve *static.VerifyError) int {
	if ve == nil {
		return 0
	}
	return ve.Status
}

// storable: credentials may be stored for a first consent (pending) or a
// re-consent (active, attention_required).
func storable(c store.Connection) error {
	switch c.Status {
	case messages.StatusPending, messages.StatusActive, messages.StatusAttentionRequired:
		return nil
	case messages.StatusRevoked:
		return store.ErrRevoked
	}
	return messages.Errorf(messages.CodeNotActive, "the connection is %s; start a new connection", c.Status)
}

// serveStatic answers tokens.get for an active static connection (slow
// path) and caches what it served.
func (h *Handlers) serveStatic(ctx context.Context, snap cache.Snapshot, c store.Connection, t store.Tokens) (json.RawMessage, error) {
	used, missing, err := staticFields(c, t)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return h.staticIncomplete(ctx, c.ID)
	}
	return h.cacheReply(snap, c, staticCredential(c, used))
}

// staticFields opens a static connection's credentials and selects those
// its provider's current strategy uses.
func staticFields(c store.Connection, t store.Tokens) (used map[string]any, missing []string, err error) {
	if c.Strategy == nil {
		return nil, nil, fmt.Errorf("static connection %s: provider %s has no strategy", c.ID, c.ProviderID)
	}
	if t.Static.IsZero() {
		return nil, nil, fmt.Errorf("active static connection %s holds no credentials", c.ID)
	}
	creds, err := static.Decode([]byte(t.Static.Reveal()))
	if err != nil {
		return nil, nil, fmt.Errorf("static connection %s: stored credentials are not a JSON object", c.ID)
	}
	used, missing = static.Select(*c.Strategy, creds)
	return used, missing, nil
}

// staticIncomplete: the provider's strategy changed and now needs a field
// the stored credentials lack (or hold as something other than text). Only
// the user can supply it, so the connection moves to attention_required
// (credentials_incomplete) and the answer says so. The check is repeated
// under the row lock: a re-consent may just have fixed it.
func (h *Handlers) staticIncomplete(ctx context.Context, id string) (json.RawMessage, error) {
	var cred messages.Credential
	c, err := h.Store.WithLock(ctx, id, func(ctx context.Context, l *store.Locked) error {
		if err := l.Conn.Serveable(); err != nil {
			return err
		}
		t, err := l.Tokens()
		if err != nil {
			return err
		}
		used, missing, err := staticFields(l.Conn, t)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			cred = staticCredential(l.Conn, used)
			return nil
		}
		if err := l.RequireAttention(ctx, messages.Reason{Code: "credentials_incomplete",
			Message: fmt.Sprintf("The provider now needs the credential field(s) %s, which this connection does not have; the user must connect again.",
				strings.Join(missing, ", "))}); err != nil {
			return err
		}
		return &store.NotActiveError{Conn: l.Conn}
	})
	if err != nil {
		var na *store.NotActiveError
		if errors.As(err, &na) {
			na.Conn = c
		}
		return nil, err
	}
	return json.Marshal(cred)
}

// staticCredential is what the Gateway gets for a static connection: the
// fields the strategy uses (never the other properties the user supplied)
// and the provider's current strategy.
func staticCredential(c store.Connection, used map[string]any) messages.Credential {
	st := *c.Strategy
	if st.Config == nil {
		st.Config = map[string]any{}
	}
	return messages.Credential{
		ConnectionID: c.ID,
		Provider:     c.ProviderName,
		AuthType:     messages.AuthStatic,
		Credentials:  used,
		Scopes:       []string{},
		Strategy:     st,
		Config:       c.Config,
	}
}
