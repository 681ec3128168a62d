package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/state"
)

// exchangeTimeout bounds the vault's code exchange. It does not end with the
// browser's request: a closed tab must not leave a connection half-done.
const exchangeTimeout = 20 * time.Second

// Reason codes the handshake itself gives for a failed consent.
const (
	ReasonIssuerMismatch = "issuer_mismatch"
	ReasonUnexpectedIss  = "unexpected_iss"
	ReasonWrongCallback  = "wrong_callback"
	ReasonMissingCode    = "missing_code"
)

// callback finishes a consent: it checks state, the browser binding,
// consumes the flow (once), checks where the response came from (RFC 9207
// iss, and the callback path it came to) before anything else it says, has
// the vault redeem the code, and sends the browser back to the app's
// return_url. It serves both the providers' own callbacks
// (/v1/callback/{provider}) and the shared one (/v1/callback).
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q, err := parseCallbackQuery(r.URL.RawQuery)
	if err != nil {
		h.reject(w, pageBadState, "malformed query")
		return
	}
	now := h.d.Now()
	ref, err := h.d.Signer.Verify(q.State, now)
	if err != nil || !flow.ValidRef(ref) {
		reason := "invalid state"
		if errors.Is(err, state.ErrExpired) {
			reason = "expired state"
		}
		// Never redirect here: without a genuine state there is no trusted return_url.
		h.reject(w, pageBadState, reason)
		return
	}
	// Read the flow and check the browser binding before consuming it: a
	// callback URL replayed from another browser (or built from a state seen
	// in a provider's logs) must not burn the owner's consent.
	f, err := h.d.Flows.Get(r.Context(), ref)
	if !h.flowUsable(w, err) {
		return
	}
	if f.Expired(now) {
		h.reject(w, pageUsed, "flow expired")
		return
	}
	name := h.d.Binder.CookieName(ref)
	if c, err := r.Cookie(name); err != nil || !h.d.Binder.Check(ref, c.Value) {
		h.d.Log.Warn("callback rejected: browser binding cookie missing or wrong", "connection_id", f.ConnectionID)
		h.reject(w, pageBrowserMismatch, "")
		return
	}
	// Now take it, once: of two racing callbacks only one gets here.
	f, err = h.d.Flows.Consume(r.Context(), ref)
	if !h.flowUsable(w, err) {
		return
	}
	log := h.d.Log.With("connection_id", f.ConnectionID)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: h.cookie.path, MaxAge: -1,
		HttpOnly: true, Secure: h.cookie.secure, SameSite: http.SameSiteLaxMode})

	// Where the response came from, first: an error response from another
	// server (a mix-up) must not decide this consent either.
	if reason, why := h.origin(r, f, q); reason != "" {
		h.fail(f, reason, originMessages[reason])
		log.Warn("callback rejected: "+why, "has_iss", q.HasIss, "provider_id", f.ProviderID)
		h.back(w, r, f, reason)
		return
	}
	if q.Error != "" {
		// Only the code, from a fixed set: nothing the provider writes in
		// free text is stored, logged or published.
		h.fail(f, q.Error, "The provider refused the authorization request ("+q.Error+").")
		log.Info("consent failed at the provider", "error", q.Error)
		h.back(w, r, f, q.Error)
		return
	}
	if q.Code == "" {
		h.fail(f, ReasonMissingCode, "the provider's response carried no authorization code")
		h.back(w, r, f, ReasonMissingCode)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exchangeTimeout)
	defer cancel()
	_, err = h.d.Vault.Exchange(ctx, messages.VaultExchange{
		ConnectionID:   f.ConnectionID,
		Code:           q.Code,
		CodeVerifier:   f.Verifier,
		RedirectURI:    f.RedirectURI,
		Nonce:          f.Nonce,
		Confirm:        h.confirmation(&f),
		CallbackParams: f.Kept(q.Params),
	})
	if err != nil {
		// The code is spent either way.
		f.Confirmation = ""
		h.vaultFailed(w, r, f, h.back, err, "the authorization code could not be redeemed", "code exchange failed")
		return
	}
	log.Info("consent completed")
	h.back(w, r, f, "")
}

// originMessages are the reasons recorded when a response is not from the
// flow's server.
var originMessages = map[string]string{
	ReasonIssuerMismatch: "The authorization response did not come from the expected issuer.",
	ReasonUnexpectedIss:  "The authorization response carried an issuer its server does not say it sends.",
	ReasonWrongCallback:  "The authorization response came back to another provider's callback.",
}

// origin checks that the response is from the flow's server (RFC 9207 and
// RFC 9700 section 4.4): its iss, compared by simple string comparison,
// must be the flow's issuer when the server sends iss (and is then
// required); an iss from a server that does not say it sends one is
// refused; and the response must come to the flow's own callback path. It
// returns a reason code and why, or "".
func (h *Handler) origin(r *http.Request, f flow.Flow, q callbackQuery) (reason, why string) {
	switch {
	case q.HasIss && !f.IssRequired:
		return ReasonUnexpectedIss, "iss from a server that does not advertise it"
	case f.IssRequired && (!q.HasIss || q.Iss != f.ExpectedIssuer):
		return ReasonIssuerMismatch, "iss missing or not the flow's issuer"
	}
	if f.RedirectURI != "" {
		// The routes are served at the root, under a PUBLIC_URL path that a
		// proxy in front strips: compare below it.
		want, err := url.Parse(f.RedirectURI)
		prefix := strings.TrimSuffix(h.d.PublicURL.Path, "/")
		if err != nil || strings.TrimPrefix(want.Path, prefix) != r.URL.Path {
			return ReasonWrongCallback, "the response came to another callback path than the flow's redirect URI"
		}
	}
	return "", ""
}

// flowUsable renders the right page when a flow could not be read.
func (h *Handler) flowUsable(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, flow.ErrNotFound):
		h.reject(w, pageUsed, "flow already used or expired")
	default:
		h.d.Log.Error("reading a flow failed", "err", err)
		h.callbacks.WithLabelValues("rejected").Inc()
		pageUnavailable.render(w)
	}
	return false
}

// back sends the browser to the flow's return_url with connection_id and
// status (and error when errCode is set), counting the callback's outcome.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, f flow.Flow, errCode string) {
	if !h.redirectBack(w, r, f, errCode) {
		h.callbacks.WithLabelValues("rejected").Inc()
		return
	}
	if errCode == "" {
		h.callbacks.WithLabelValues("active").Inc()
	} else {
		h.callbacks.WithLabelValues("failed").Inc()
	}
}

// reject shows an error page.
func (h *Handler) reject(w http.ResponseWriter, p page, why string) {
	if why != "" {
		h.d.Log.Info("callback rejected", "why", why)
	}
	h.callbacks.WithLabelValues("rejected").Inc()
	p.render(w)
}
