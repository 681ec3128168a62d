package natsapi

import (
	"context"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Templates is the provider catalog (internal/catalog).
type Templates interface {
	List(ctx context.Context, req struct{}) (messages.ListTemplatesReply, error)
	Get(ctx context.Context, ref messages.TemplateRef) (messages.Template, error)
}

// RegisterTemplates adds providers.templates.list and .get to svc, for
// operators only (the catalog holds no secret, but only operators create
// providers).
func RegisterTemplates(svc *natsx.Service, t Templates) error {
	operator := natsx.For(apikey.Operator)
	return errors.Join(
		natsx.Endpoint(svc, messages.SubjectProvidersTemplatesList, t.List, operator),
		natsx.Endpoint(svc, messages.SubjectProvidersTemplatesGet, t.Get, operator),
	)
}
