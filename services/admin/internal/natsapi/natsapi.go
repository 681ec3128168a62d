// Package natsapi serves the provider registry on NATS: the
// v1.admin.providers.* request/reply subjects, and the audit log
// (v1.admin.audit.list). Errors become the contract's
// error replies in natsx, the one place for this transport.
package natsapi

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Registry is the service layer the endpoints call.
type Registry interface {
	Create(ctx context.Context, doc json.RawMessage) (messages.Provider, error)
	Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
	Find(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
	List(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error)
	Update(ctx context.Context, u messages.ProviderUpdate) (messages.Provider, error)
	Delete(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
}

// AuditLog answers audit.list (internal/audit).
type AuditLog interface {
	List(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error)
}

// Register adds the providers.* endpoints and audit.list to svc.
func Register(svc *natsx.Service, reg Registry, audit AuditLog) error {
	// Create takes the document as sent (a json.RawMessage), which the
	// registry reads itself to report every problem of it at once.
	// Operators change providers; the handshake reads one to start a
	// consent. No provider document carries a secret.
	operator := natsx.For(apikey.Operator)
	return errors.Join(
		natsx.Endpoint(svc, messages.SubjectProvidersCreate, reg.Create, operator, natsx.MaxBytes(MaxDocumentBytes)),
		natsx.Endpoint(svc, messages.SubjectProvidersGet, func(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error) {
			// The handshake reads a provider at every handshake.begin; the
			// vault's word on its health is for operators, and would add a
			// vault call to each consent.
			// Nor is the client secret's digest: the handshake gets none.
			if natsx.CallerOf(ctx).Principal == apikey.Handshake {
				p, err := reg.Find(ctx, ref)
				p.ClientSecretDigest = ""
				return p, err
			}
			return reg.Get(ctx, ref)
		}, natsx.For(apikey.Operator, apikey.Handshake)),
		natsx.Endpoint(svc, messages.SubjectProvidersList, reg.List, operator),
		natsx.Endpoint(svc, messages.SubjectProvidersUpdate, reg.Update, operator, natsx.MaxBytes(MaxDocumentBytes)),
		natsx.Endpoint(svc, messages.SubjectProvidersDelete, reg.Delete, operator),
		natsx.Endpoint(svc, messages.SubjectAuditList, audit.List, operator),
	)
}

// MaxDocumentBytes bounds a provider document (its credential schema
// included) on NATS, as on HTTP.
const MaxDocumentBytes = 1 << 20
