// Package keys relays the vault's report on its encryption keys to
// operators: what is sealed under each key, and whether a rotation is
// complete (v1.admin.keys.status on NATS, GET /v1/keys over HTTP). Admin
// adds nothing to it: only the vault knows what it sealed, and the report
// holds key ids and counts, never a key or a value.
package keys

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Timeout bounds the vault's answer: it counts every key id index once.
const Timeout = 30 * time.Second

// Relay asks the vault (v1.vault.keys.status), presenting admin's key.
type Relay struct {
	Client *natsx.Client
	Log    *slog.Logger
}

// Status is the vault's report, or unavailable when the vault cannot be
// reached; the vault's own error replies pass through as they are.
func (r Relay) Status(ctx context.Context, req messages.KeysStatusRequest) (messages.KeysStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var out messages.KeysStatus
	err := r.Client.Request(ctx, messages.SubjectVaultKeysStatus, req, &out)
	var e *messages.Error
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &e):
		return messages.KeysStatus{}, e
	}
	r.Log.Warn("vault keys.status failed", "err", err)
	return messages.KeysStatus{}, messages.Errorf(messages.CodeUnavailable, "the vault could not be reached")
}
