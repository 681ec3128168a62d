// Package begin answers handshake.begin: it checks the request, resolves the
// provider with admin, has the vault open a pending connection, stores a
// flow and returns the connect link.
package begin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/form"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// CallbackPath is the redirect URI's path under PUBLIC_URL; ConnectPath the
// connect link's, followed by the flow id.
const (
	CallbackPath = "/v1/callback"
	ConnectPath  = "/v1/connect/"
)

// Deps is what the endpoint needs.
type Deps struct {
	Limit      Limiter // nil for no limits
	Providers  Providers
	Vault      Vault
	Flows      FlowStore
	Discovery  Discoverer
	ReturnURLs ReturnURLs
	PublicURL  string // no trailing slash
	FlowTTL    time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	// ProviderNetworks is PROVIDER_PRIVATE_NETWORKS, for the rule the
	// authorization endpoint follows (discovery.CheckEndpoint).
	ProviderNetworks egress.Networks
}

// Handler is the handshake.begin endpoint.
type Handler struct {
	d Deps
}

// New returns the endpoint.
func New(d Deps) *Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{d: d}
}

// Register adds the endpoint to svc. The Gateway begins any consent; admin
// (the operator console) only a re-consent of an existing connection, whose
// link the operator hands its user: the grant still goes to the vault, and
// the tokens only ever to the Gateway.
func (h *Handler) Register(svc *natsx.Service) error {
	return natsx.Endpoint(svc, messages.SubjectHandshakeBegin, h.Begin, natsx.For(apikey.Gateway, apikey.Admin))
}

// Begin starts a consent.
func (h *Handler) Begin(ctx context.Context, req messages.BeginRequest) (*messages.BeginReply, error) {
	if natsx.CallerOf(ctx).Principal == apikey.Admin && (req.ConnectionID == "" || req.RequireConfirmation) {
		return nil, messages.Errorf(messages.CodeForbidden, "admin may only begin a re-consent of an existing connection, without require_confirmation")
	}
	if err := checkRequest(&req); err != nil {
		return nil, err
	}
	returnURL, err := h.d.ReturnURLs.Check(req.ReturnURL)
	if err != nil {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "%v", err)
	}
	// Before anything is created: a refused begin leaves nothing behind.
	if h.d.Limit != nil {
		if err := h.d.Limit.Allow(ctx, natsx.CallerOf(ctx).KeyID, req.WorkspaceID); err != nil {
			return nil, err
		}
	}

	p, err := h.d.Providers.GetProvider(ctx, req.Provider)
	if err != nil {
		return nil, err
	}
	var f flow.Flow
	if p.Type == messages.ProviderStatic {
		f, err = h.static(&p)
	} else {
		f, err = h.authorization(ctx, &p)
	}
	if err != nil {
		return nil, err
	}
	f.Scopes = scopes(req.Scopes, &p)

	// The vault expires a consent still pending when its link does.
	expires := h.d.Now().Add(h.d.FlowTTL).UTC().Truncate(time.Second)
	conn, err := h.d.Vault.CreateConnection(ctx, messages.VaultCreateConnection{
		ConnectionID: req.ConnectionID,
		ProviderID:   p.ID,
		WorkspaceID:  req.WorkspaceID,
		Scopes:       f.Scopes,
		Metadata:     req.Metadata,
		Actor:        natsx.CallerOf(ctx).KeyID,
		ExpiresAt:    &expires,
	})
	if err != nil {
		return nil, err
	}
	if conn.ConnectionID == "" {
		return nil, errors.New("vault created a connection without an id")
	}
	if req.ConnectionID != "" {
		// Incremental consent, as the vault records it: a connection that
		// was granted scopes asks for them again with the new ones, so a
		// client that met insufficient_scope gains scopes and loses none.
		f.Scopes = withGranted(f.Scopes, conn)
	}

	id := flow.NewID()
	f.ConnectionID = conn.ConnectionID
	f.WorkspaceID = req.WorkspaceID
	f.ProviderID = p.ID
	f.ProviderType = p.Type
	if p.Type != messages.ProviderStatic {
		// The provider's own callback tells its responses apart from any
		// other server's, iss or not (RFC 9700 section 4.4.2).
		path := p.CallbackPath
		if path == "" {
			path = messages.ProviderCallbackPath(p.ID)
		}
		f.RedirectURI = h.d.PublicURL + path
		f.Verifier = oauth2.GenerateVerifier()
	}
	if p.Type == messages.ProviderOIDC {
		f.Nonce = randomToken()
	}
	f.ReturnURL = returnURL.String()
	f.ExpiresAt = expires
	f.RequireConfirmation = req.RequireConfirmation
	if err := h.d.Flows.Put(ctx, id, f, h.d.FlowTTL); err != nil {
		h.d.Log.Error("storing the flow failed", "connection_id", conn.ConnectionID, "err", err)
		return nil, messages.Errorf(messages.CodeUnavailable, "could not start the consent; try again")
	}
	h.d.Log.Info("consent started", "connection_id", conn.ConnectionID, "provider_id", p.ID, "workspace_id", req.WorkspaceID)
	return &messages.BeginReply{
		ConnectionID: conn.ConnectionID,
		AuthURL:      h.d.PublicURL + ConnectPath + id,
		ExpiresAt:    expires,
	}, nil
}

// authorization fills in where and how to send the user: the authorization
// endpoint, client id, extra parameters and the issuer to expect back.
func (h *Handler) authorization(ctx context.Context, p *messages.Provider) (flow.Flow, error) {
	var f flow.Flow
	switch p.Type {
	case messages.ProviderOIDC:
		f.AuthorizationEndpoint = p.AuthorizationEndpoint
		f.ExpectedIssuer = p.Issuer
		if p.Issuer == "" {
			return f, messages.Errorf(messages.CodeInternal, "provider %s has no issuer", p.ID)
		}
		// Fail closed when discovery is unreachable: the document says
		// whether the provider sends iss (RFC 9207), and falling back to the
		// stored endpoint without it would let whoever can block discovery
		// switch the mix-up check off.
		doc, err := h.d.Discovery.Get(ctx, p.Issuer)
		if err != nil {
			h.d.Log.Error("discovery failed", "provider_id", p.ID, "err", err)
			return f, messages.Errorf(messages.CodeProviderError, "could not read the provider's OpenID configuration; try again later")
		}
		if doc.AuthorizationEndpoint != "" {
			f.AuthorizationEndpoint = doc.AuthorizationEndpoint
		}
		// Once the provider says it sends iss, it is required; what
		// discovery says later never turns that off (only an operator can).
		f.IssRequired = p.IssParameterSupported || doc.IssParameterSupported
	case messages.ProviderOAuth2:
		f.AuthorizationEndpoint = p.AuthorizationEndpoint
		f.ExpectedIssuer = p.Issuer
		f.IssRequired = p.IssParameterSupported
	default:
		return f, messages.Errorf(messages.CodeInvalidRequest, "provider %s has unsupported type %q", p.ID, p.Type)
	}
	if f.AuthorizationEndpoint == "" {
		return f, messages.Errorf(messages.CodeInternal, "provider %s has no authorization endpoint", p.ID)
	}
	if err := discovery.CheckEndpoint(f.AuthorizationEndpoint, h.d.ProviderNetworks); err != nil {
		h.d.Log.Error("provider authorization endpoint refused", "provider_id", p.ID, "err", err)
		return f, messages.Errorf(messages.CodeInternal, "provider %s has an unusable authorization endpoint", p.ID)
	}
	if p.ClientID == "" {
		return f, messages.Errorf(messages.CodeInternal, "provider %s has no client_id", p.ID)
	}
	f.ClientID = p.ClientID
	f.AuthorizationParams = authParams(p.AuthorizationParams)
	if p.Quirks != nil {
		f.CallbackParams = slices.Sorted(maps.Values(p.Quirks.ConfigFromCallback))
	}
	return f, nil
}

// static prepares the hosted form's flow: the provider's credential schema
// travels with the flow, so the page and the checks on what is submitted use
// the schema of the time the consent began. The schema must compile and
// render here, before a connection is opened.
func (h *Handler) static(p *messages.Provider) (flow.Flow, error) {
	if _, err := form.Parse(p.CredentialSchema); err != nil {
		h.d.Log.Error("provider credential schema unusable", "provider_id", p.ID, "err", err)
		return flow.Flow{}, messages.Errorf(messages.CodeInternal, "provider %s has an unusable credential schema", p.ID)
	}
	var secret []string
	if p.Strategy != nil {
		for _, f := range p.Strategy.Fields() {
			if f.Secret {
				secret = append(secret, f.Name)
			}
		}
	}
	return flow.Flow{ProviderName: p.Name, CredentialSchema: p.CredentialSchema, SecretFields: secret}, nil
}

// randomToken is 32 random bytes, base64url: the OIDC nonce.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
