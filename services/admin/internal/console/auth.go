package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// Cookie names. With https the session cookie takes the __Host- prefix:
// the browser then keeps it only if it is Secure, host-only and for path /.
const (
	sessionCookie       = "nexus_console"
	secureSessionCookie = "__Host-nexus_console"
	// loginCookie carries the login form's token before there is a session
	// (a double-submit token: the form and the cookie must agree).
	loginCookie       = "nexus_console_login"
	secureLoginCookie = "__Host-nexus_console_login"
)

// csrfField is the forms' hidden synchronizer token.
const csrfField = "csrf"

type sessionKey struct{}

// secure: the console is served over https, so cookies are Secure.
func (c *Console) secure(r *http.Request) bool {
	if c.o.URL != nil {
		return c.o.URL.Scheme == "https"
	}
	return r.TLS != nil
}

func (c *Console) cookieName(r *http.Request, plain, secure string) string {
	if c.secure(r) {
		return secure
	}
	return plain
}

// origin is the only Origin a form may come from.
func (c *Console) origin(r *http.Request) string {
	if c.o.URL != nil {
		return c.o.URL.Scheme + "://" + c.o.URL.Host
	}
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// sameOrigin: the request says it comes from the console's own origin.
// Browsers send Origin with every POST; a request without one is refused.
func (c *Console) sameOrigin(r *http.Request) bool {
	return r.Header.Get("Origin") == c.origin(r)
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// sessionID is the session id the request's cookie holds ("" for none:
// no session has it).
func (c *Console) sessionID(r *http.Request) string {
	ck, err := r.Cookie(c.cookieName(r, sessionCookie, secureSessionCookie))
	if err != nil {
		return ""
	}
	return ck.Value
}

// current is the session the request's cookie names, marked used.
func (c *Console) current(r *http.Request) (string, session, error) {
	id := c.sessionID(r)
	se, err := c.sessions.get(r.Context(), id)
	return id, se, err
}

// signedIn reports whether the request's session is still live, without
// marking it used (sessions.check).
func (c *Console) signedIn(r *http.Request) bool {
	_, err := c.sessions.check(r.Context(), c.sessionID(r))
	return err == nil
}

// withSession puts the session and the operator it speaks for in the
// context: the registry's audit records name the key's id.
func withSession(ctx context.Context, se session) context.Context {
	ctx = context.WithValue(ctx, sessionKey{}, se)
	return apikey.WithCaller(ctx, apikey.Caller{Principal: apikey.Operator, KeyID: se.KeyID})
}

func sessionOf(ctx context.Context) session {
	se, _ := ctx.Value(sessionKey{}).(session)
	return se
}

// page serves a page to a signed-in operator; anyone else is sent to the
// login page.
func (c *Console) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, se, err := c.current(r)
		if err != nil {
			c.noSession(w, r, err)
			return
		}
		h(w, r.WithContext(withSession(r.Context(), se)))
	})
}

// form serves a state-changing POST: it must come from the console's own
// origin, with a live session and that session's synchronizer token.
func (c *Console) form(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.sameOrigin(r) {
			c.forbidden(w, r, "This form did not come from the console's own page.")
			return
		}
		_, se, err := c.current(r)
		if err != nil {
			c.noSession(w, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if !sameToken(r.PostFormValue(csrfField), se.CSRF) {
			c.forbidden(w, r, "This form is stale or was not sent by the console: open the page again.")
			return
		}
		h(w, r.WithContext(withSession(r.Context(), se)))
	})
}

// maxForm bounds a form body (a provider document by hand included).
const maxForm = 1 << 20

func (c *Console) noSession(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, errNoSession) {
		c.o.Log.Error("console: sessions unreadable", "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "error", nil, view{Title: "Unavailable", Error: "Sessions cannot be read right now; try again."})
		return
	}
	if r.Method == http.MethodGet {
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusUnauthorized, "error", nil, view{Title: "Signed out", Error: "You are not signed in (or your session ended): sign in again."})
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	c.render(w, r, http.StatusForbidden, "error", nil, view{Title: "Refused", Error: msg})
}

// loginPage shows the sign-in form with a fresh login token.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, err := c.current(r); err == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomToken()
	c.setCookie(w, r, c.cookieName(r, loginCookie, secureLoginCookie), token, 600)
	c.render(w, r, status, "login", nil, view{Title: "Sign in", Nav: "login", CSRF: token, Error: msg})
}

// login checks the operator key: any of ADMIN_API_KEY's, and nothing
// else (a Gateway or service key is refused), counted per client address.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		c.forbidden(w, r, "This form did not come from the console's own page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(c.cookieName(r, loginCookie, secureLoginCookie))
	if err != nil || !sameToken(r.PostFormValue(csrfField), ck.Value) {
		c.showLogin(w, r, http.StatusForbidden, "The sign-in form expired: try again.")
		return
	}
	if err := c.limit.Allow(r.Context(), clientAddr(r), ""); err != nil {
		var me *messages.Error
		if errors.As(err, &me) {
			c.showLogin(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from here: wait a minute and try again.")
			return
		}
		c.showLogin(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	caller, known := c.o.Callers.Identify(strings.TrimSpace(r.PostFormValue("key")))
	if !known || caller.Principal != apikey.Operator {
		c.o.Log.Info("console: sign-in refused", "known_key", known, "principal", caller.Principal, "key_id", caller.KeyID)
		c.showLogin(w, r, http.StatusUnauthorized, "That is not an operator key (ADMIN_API_KEY).")
		return
	}
	id, _, err := c.sessions.create(r.Context(), caller.KeyID)
	if err != nil {
		c.o.Log.Error("console: sign-in failed", "err", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	c.setCookie(w, r, c.cookieName(r, loginCookie, secureLoginCookie), "", -1)
	c.setCookie(w, r, c.cookieName(r, sessionCookie, secureSessionCookie), id, int(SessionTTL.Seconds()))
	c.o.Log.Info("console: signed in", "key_id", caller.KeyID)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout ends the session here and on every replica.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	id, _, err := c.current(r)
	if err == nil {
		err = c.sessions.end(r.Context(), id)
	}
	if err != nil && !errors.Is(err, errNoSession) {
		c.o.Log.Error("console: logout failed", "err", err)
	}
	c.setCookie(w, r, c.cookieName(r, sessionCookie, secureSessionCookie), "", -1)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// clientAddr is the address login attempts are counted by: the peer's
// (behind a proxy, every operator shares the proxy's).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
