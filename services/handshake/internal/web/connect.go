package web

import (
	"errors"
	"maps"
	"net/http"
	"slices"

	"golang.org/x/oauth2"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/form"
)

// connect sends the browser to the provider's authorization endpoint with a
// signed state, the PKCE S256 challenge and, for OIDC, the nonce, and binds
// the flow to this browser with a cookie. For a static provider it shows the
// hosted credential form instead (form.go).
func (h *Handler) connect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("flow")
	if !flow.ValidID(id) {
		pageUnknownLink.render(w)
		return
	}
	ref := flow.Ref(id)
	f, err := h.d.Flows.Get(r.Context(), ref)
	switch {
	case errors.Is(err, flow.ErrNotFound):
		pageUnknownLink.render(w)
		return
	case err != nil:
		h.d.Log.Error("reading a flow failed", "err", err)
		pageUnavailable.render(w)
		return
	}
	now := h.d.Now()
	if f.Expired(now) {
		pageExpiredLink.render(w)
		return
	}
	if f.ProviderType == messages.ProviderStatic {
		fm, err := form.Parse(f.CredentialSchema, f.SecretFields...)
		if err != nil {
			h.d.Log.Error("the flow's credential schema is unusable", "connection_id", f.ConnectionID, "err", err)
			pageUnavailable.render(w)
			return
		}
		h.showForm(w, id, ref, f, fm, http.StatusOK, nil, nil)
		return
	}

	cfg := oauth2.Config{
		ClientID:    f.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: f.AuthorizationEndpoint},
		RedirectURL: f.RedirectURI,
		Scopes:      f.Scopes,
	}
	// The provider's own parameters first, so that nothing of ours can be
	// overridden by them (begin also drops the reserved ones).
	var opts []oauth2.AuthCodeOption
	for _, k := range slices.Sorted(maps.Keys(f.AuthorizationParams)) {
		opts = append(opts, oauth2.SetAuthURLParam(k, f.AuthorizationParams[k]))
	}
	opts = append(opts, oauth2.S256ChallengeOption(f.Verifier))
	if f.Nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", f.Nonce))
	}
	authURL := cfg.AuthCodeURL(h.d.Signer.Sign(ref, f.ExpiresAt), opts...)

	maxAge := int(f.ExpiresAt.Sub(now).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{
		Name:     h.d.Binder.CookieName(ref),
		Value:    h.d.Binder.Value(ref),
		Path:     h.cookie.path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.cookie.secure,
		SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, authURL, http.StatusFound)
}
