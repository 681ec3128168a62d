package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/form"
	"github.com/nexus-broker/nexus/services/handshake/internal/state"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// The hosted form for static credentials. GET /v1/connect/{flow} shows it;
// POST /v1/connect/{flow} takes what the person typed:
//
//   - cross-site posts are refused (Sec-Fetch-Site, Origin, Referer);
//   - the browser must carry the flow's binding cookie (set when it opened
//     the link) and a CSRF token matching its per-render nonce cookie;
//     neither refusal consumes the flow, so its owner can still finish;
//   - the values are typed and checked against the schema; errors re-render
//     the form (422) next to their fields, secrets never echoed;
//   - a submission that gets that far is counted against the flow's limit
//     (FormLimit): over it, the form is shown again with a wait;
//   - only then is the flow consumed (GETDEL, as in the callback: a replay or
//     a double submission finds nothing) and the credentials handed to the
//     vault, once. The browser goes back to return_url like an OAuth consent;
//   - if the vault's verification request refused them, or could not reach
//     the provider, the flow is put back for the rest of its lifetime and the
//     form is shown again with the broker's own words for it; the
//     connection stays pending, and only the link's expiry ends it.

// maxFormBody bounds a form submission.
const maxFormBody = 64 << 10

// storeTimeout bounds the vault's store, its verification request included.
// It does not end with the browser's request.
const storeTimeout = 20 * time.Second

// csrfField is the hidden field carrying the CSRF token.
const csrfField = "_nexus_csrf"

// formPage is what the form template renders.
type formPage struct {
	Style     template.CSS
	Provider  string
	Action    string
	TokenName string
	Token     string
	Error     string
	Fields    []formField
}

// formField is one input as rendered: the schema's field plus this render's
// value (never for secrets) and error.
type formField struct {
	form.Field
	ID      string
	Value   string
	Checked bool
	Error   string
}

// InputType is the input element's type attribute.
func (f formField) InputType() string {
	switch f.Kind {
	case form.KindPassword:
		return "password"
	case form.KindNumber, form.KindInteger:
		return "number"
	}
	return "text"
}

// Step is the number input's step: whole numbers for integers.
func (f formField) Step() string {
	switch f.Kind {
	case form.KindInteger:
		return "1"
	case form.KindNumber:
		return "any"
	}
	return ""
}

// Describe is the aria-describedby list: help text and error.
func (f formField) Describe() string {
	var ids []string
	if f.Help != "" {
		ids = append(ids, f.ID+"-help")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-err")
	}
	return strings.Join(ids, " ")
}

// connectPath is the path of a flow's connect link, where the form lives and
// its cookies are scoped.
func (h *Handler) connectPath(id string) string {
	return strings.TrimSuffix(h.d.PublicURL.Path, "/") + "/v1/connect/" + id
}

// showForm renders the form for the flow (status 200, or 422 with errors),
// with a fresh CSRF nonce and the browser binding cookie.
func (h *Handler) showForm(w http.ResponseWriter, id, ref string, f flow.Flow, fm *form.Form, status int, kept map[string]string, errs form.Errors) {
	maxAge := int(f.ExpiresAt.Sub(h.d.Now()).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	path := h.connectPath(id)
	nonce := h.d.CSRF.Nonce()
	for _, c := range []*http.Cookie{
		{Name: h.d.Binder.CookieName(ref), Value: h.d.Binder.Value(ref)},
		{Name: state.CSRFCookieName(ref), Value: nonce},
	} {
		c.Path, c.MaxAge, c.HttpOnly, c.Secure, c.SameSite = path, maxAge, true, h.cookie.secure, http.SameSiteStrictMode
		http.SetCookie(w, c)
	}
	data := formPage{
		Style:     template.CSS(style),
		Provider:  f.ProviderName,
		Action:    path,
		TokenName: csrfField,
		Token:     h.d.CSRF.Token(ref, nonce),
		Error:     errs[""],
	}
	for i, fd := range fm.Fields {
		ff := formField{Field: fd, ID: "f" + strconv.Itoa(i), Error: errs[fd.Name]}
		v, submitted := kept[fd.Name]
		if !submitted && kept == nil {
			v = fd.Default // first render: the schema's default (never for secrets)
		}
		if fd.Secret {
			v = ""
		}
		if fd.Kind == form.KindCheckbox {
			ff.Checked = v == "true" || v == "on"
		} else {
			ff.Value = v
		}
		data.Fields = append(data.Fields, ff)
	}
	var buf bytes.Buffer
	if err := formTemplate.Execute(&buf, data); err != nil {
		h.d.Log.Error("rendering the credential form failed", "err", err)
		pageUnavailable.render(w)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", formCSP(formActionSources(f.ReturnURL)))
	// With no-referrer, browsers send "Origin: null" on the form's own
	// same-origin POST; same-origin keeps the real Origin there and still
	// sends nothing to other origins (the app, after the redirect).
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// formActionSources allows the form to post to itself and to be redirected
// on to the app's return_url.
func formActionSources(returnURL string) string {
	u, err := url.Parse(returnURL)
	if err != nil || u.Host == "" || strings.ContainsAny(u.Host, "[]") {
		return "'self'"
	}
	return "'self' " + u.Scheme + "://" + u.Host
}

// submit takes a filled-in form.
func (h *Handler) submit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("flow")
	if !flow.ValidID(id) {
		pageUnknownLink.render(w)
		return
	}
	if crossSite(r, h.d.PublicURL) {
		h.refuse(w, pageCrossSite, "cross-site submission")
		return
	}
	ref := flow.Ref(id)
	f, err := h.d.Flows.Get(r.Context(), ref)
	switch {
	case errors.Is(err, flow.ErrNotFound):
		h.refuse(w, pageUsed, "flow already used or expired")
		return
	case err != nil:
		h.d.Log.Error("reading a flow failed", "err", err)
		pageUnavailable.render(w)
		return
	case f.ProviderType != messages.ProviderStatic:
		pageNotFound.render(w)
		return
	case f.Expired(h.d.Now()):
		pageExpiredLink.render(w)
		return
	}
	log := h.d.Log.With("connection_id", f.ConnectionID)
	if c, err := r.Cookie(h.d.Binder.CookieName(ref)); err != nil || !h.d.Binder.Check(ref, c.Value) {
		log.Warn("credential form refused: browser binding cookie missing or wrong")
		h.refuse(w, pageFormBrowser, "")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		h.refuse(w, pageBadForm, "not a urlencoded form")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, pageTooLarge, "form body too large")
			return
		}
		h.refuse(w, pageBadForm, "form body unreadable")
		return
	}
	values := r.PostForm
	nonce, _ := r.Cookie(state.CSRFCookieName(ref))
	if nonce == nil || !h.d.CSRF.Check(ref, nonce.Value, values.Get(csrfField)) {
		log.Warn("credential form refused: CSRF token missing or wrong")
		h.refuse(w, pageFormToken, "")
		return
	}
	fm, err := form.Parse(f.CredentialSchema, f.SecretFields...)
	if err != nil {
		log.Error("the flow's credential schema is unusable", "err", err)
		pageUnavailable.render(w)
		return
	}
	creds, errs := fm.Read(values)
	if len(errs) > 0 {
		h.forms.WithLabelValues("invalid").Inc()
		h.showForm(w, id, ref, f, fm, http.StatusUnprocessableEntity, fm.Kept(values), errs)
		return
	}
	f, err = h.d.Flows.Consume(r.Context(), ref)
	switch {
	case errors.Is(err, flow.ErrNotFound):
		h.refuse(w, pageUsed, "flow already used or expired")
		return
	case err != nil:
		log.Error("consuming a flow failed", "err", err)
		pageUnavailable.render(w)
		return
	}
	if f.Expired(h.d.Now()) {
		h.clearFormCookies(w, id, ref)
		h.refuse(w, pageUsed, "flow expired")
		return
	}
	// Each submission that reaches the verification request is counted, so
	// the form cannot be used to guess credentials at the provider's pace.
	// It is counted once the flow is this submission's (a double submission
	// is "already used", not an attempt); over the limit, the flow goes
	// back for when the wait is over.
	if h.d.FormLimit != nil {
		var me *messages.Error
		if err := h.d.FormLimit.Allow(r.Context(), f.ConnectionID, ""); errors.As(err, &me) && me.Code == messages.CodeRateLimited {
			if !h.reopen(r, id, f) {
				h.clearFormCookies(w, id, ref)
				h.refuse(w, pageUsed, "flow could not be put back after too many attempts")
				return
			}
			log.Warn("credential form refused: too many attempts")
			h.forms.WithLabelValues("limited").Inc()
			h.showForm(w, id, ref, f, fm, http.StatusTooManyRequests, fm.Kept(values),
				form.Errors{"": fmt.Sprintf("Too many attempts. Wait %d seconds, then try again.", me.RetryAfterSeconds)})
			return
		}
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	_, err = h.d.Vault.StoreStatic(ctx, messages.VaultStoreStatic{
		ConnectionID: f.ConnectionID,
		Credentials:  map[string]any(creds),
		Confirm:      h.confirmation(&f),
	})
	if err != nil {
		f.Confirmation = ""
		// Only the vault's own answer says the credentials were not kept: a
		// vault that did not answer may have stored them (and, for a
		// consent waiting for confirmation, the hash of a value this
		// browser never got), so that consent ends here.
		if msg, ok := retryMessages[vaultCode(err)]; ok && !errors.Is(err, natsx.ErrNoAnswer) && h.reopen(r, id, f) {
			log.Info("static credentials not verified; the form is shown again", "code", vaultCode(err))
			h.forms.WithLabelValues("unverified").Inc()
			h.showForm(w, id, ref, f, fm, http.StatusUnprocessableEntity, fm.Kept(values), form.Errors{"": msg})
			return
		}
		// The flow is spent, so a pending connection would otherwise wait
		// for expiry.
		h.clearFormCookies(w, id, ref)
		h.vaultFailed(w, r, f, h.formBack, err, "the credentials could not be stored", "storing static credentials failed")
		return
	}
	h.clearFormCookies(w, id, ref)
	log.Info("static credentials stored")
	h.formBack(w, r, f, "")
}

// retryMessages are what the form says, in the broker's words, when the
// vault's verification request did not accept the credentials (by the
// vault's code): the connection is left pending, and the person may try
// again until the link expires.
var retryMessages = map[messages.ErrorCode]string{
	messages.CodeProviderError: "These credentials were refused. Check them and try again.",
	messages.CodeUnavailable:   "The service could not be reached; try again.",
}

// vaultCode is the contract code of a vault's answer, "" when the vault did
// not answer with one.
func vaultCode(err error) messages.ErrorCode {
	var me *messages.Error
	if errors.As(err, &me) {
		return me.Code
	}
	return ""
}

// reopen puts a consumed flow back for the rest of its lifetime, so its form
// can be submitted again; it reports false when it could not. Like the vault
// call before it, it does not end with the browser's request.
func (h *Handler) reopen(r *http.Request, id string, f flow.Flow) bool {
	ttl := f.ExpiresAt.Sub(h.d.Now())
	if ttl <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), failTimeout)
	defer cancel()
	if err := h.d.Flows.Put(ctx, id, f, ttl); err != nil {
		h.d.Log.Warn("putting back a flow for another attempt failed", "connection_id", f.ConnectionID, "err", err)
		return false
	}
	return true
}

// formBack sends the browser to the flow's return_url with connection_id
// and status (and error when errCode is set), counting the submission's
// outcome.
func (h *Handler) formBack(w http.ResponseWriter, r *http.Request, f flow.Flow, errCode string) {
	switch {
	case !h.redirectBack(w, r, f, errCode):
		h.forms.WithLabelValues("refused").Inc()
	case errCode == "":
		h.forms.WithLabelValues("active").Inc()
	default:
		h.forms.WithLabelValues("failed").Inc()
	}
}

// refuse shows an error page for a submission that goes no further.
func (h *Handler) refuse(w http.ResponseWriter, p page, why string) {
	if why != "" {
		h.d.Log.Info("credential form refused", "why", why)
	}
	h.forms.WithLabelValues("refused").Inc()
	p.render(w)
}

func (h *Handler) clearFormCookies(w http.ResponseWriter, id, ref string) {
	for _, name := range []string{h.d.Binder.CookieName(ref), state.CSRFCookieName(ref)} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: h.connectPath(id), MaxAge: -1,
			HttpOnly: true, Secure: h.cookie.secure, SameSite: http.SameSiteStrictMode})
	}
}

// crossSite reports whether a form submission comes from another site. A
// browser's Sec-Fetch-Site is decisive: same-origin passes (Origin may then
// be "null" under a strict referrer policy), anything else but none fails.
// Without it (older browsers), the Origin or Referer must be the
// handshake's own; "null" fails.
func crossSite(r *http.Request, public *url.URL) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return false
	case "", "none":
	default:
		return true
	}
	own := origin(public)
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || origin(u) != own {
			return true // "null" included
		}
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || origin(u) != own {
			return true
		}
	}
	return false
}

// origin is scheme://host[:port], lower-cased, without a default port.
func origin(u *url.URL) string {
	if u.Scheme == "" || u.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}
