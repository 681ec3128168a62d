package natsapi

import (
	"context"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Keys reports on the vault's encryption keys (internal/keys).
type Keys interface {
	Status(ctx context.Context, req messages.KeysStatusRequest) (messages.KeysStatus, error)
}

// RegisterKeys adds keys.status to svc, for operators only.
func RegisterKeys(svc *natsx.Service, k Keys) error {
	return natsx.Endpoint(svc, messages.SubjectKeysStatus, k.Status, natsx.For(apikey.Operator))
}
