// Package natsapi serves the provider registry on NATS: the
// v1.admin.providers.* request/reply subjects. Errors become the contract's
// error replies in natsx, the one place for this transport.
package natsapi

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/micro"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Registry is the service layer the endpoints call.
type Registry interface {
	Create(ctx context.Context, doc json.RawMessage) (messages.Provider, error)
	Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
	List(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error)
	Update(ctx context.Context, u messages.ProviderUpdate) (messages.Provider, error)
	Delete(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
}

// Register adds the providers.* endpoints to svc.
func Register(svc *natsx.Service, reg Registry) error {
	for subject, h := range map[string]natsx.Handler{
		messages.SubjectProvidersCreate: handle(reg.Create),
		messages.SubjectProvidersGet:    handle(reg.Get),
		messages.SubjectProvidersList:   handle(reg.List),
		messages.SubjectProvidersUpdate: handle(reg.Update),
		messages.SubjectProvidersDelete: handle(reg.Delete),
	} {
		if err := svc.Handle(subject, h); err != nil {
			return err
		}
	}
	return nil
}

// handle decodes the request body into Req and calls f. Create takes the
// document as sent (a json.RawMessage), which the registry reads itself to
// report every problem of it at once.
func handle[Req, Reply any](f func(context.Context, Req) (Reply, error)) natsx.Handler {
	return func(ctx context.Context, req micro.Request) (any, error) {
		var in Req
		if err := natsx.Decode(req.Data(), &in); err != nil {
			return nil, err
		}
		return f(ctx, in)
	}
}
