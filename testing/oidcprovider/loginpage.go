package oidcprovider

import (
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// The page of Options.LoginPage: what `make run`'s development provider
// shows a person. It asks every time (as prompt=login consent would), so
// one browser can try Deny, or sign in as someone else, after an Allow; no
// session is kept. The form has no action: it posts to the URL it was
// shown at, /login?next=..., so a script answers it by posting there.

// usernamePattern is who a person may sign in as: the id_token's sub.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,64}$`)

// scopeWords say what a scope gives, for the scopes a person is likely to
// be asked for; others are shown by name alone.
var scopeWords = map[string]string{
	"openid":         "who you are (an id_token)",
	"offline_access": "access while you are away (a refresh token)",
	"offline":        "access while you are away (a refresh token)",
	"profile":        "your name",
	"email":          "your email address",
	"address":        "your postal address",
	"phone":          "your phone number",
}

// loginPage is what the page shows: the authorization request it answers,
// the name in the field, and what was wrong with the last answer.
type loginPage struct {
	Request  url.Values
	Username string
	Problem  string
}

// Scope is one scope asked for, with its meaning in words when known.
type Scope struct{ Name, Words string }

func (p loginPage) ClientID() string { return p.Request.Get("client_id") }

func (p loginPage) Scopes() []Scope {
	var out []Scope
	for _, sc := range strings.Fields(p.Request.Get("scope")) {
		out = append(out, Scope{sc, scopeWords[sc]})
	}
	return out
}

// ReturnTo is the host the browser goes back to, from the redirect URI.
func (p loginPage) ReturnTo() string {
	u, err := url.Parse(p.Request.Get("redirect_uri"))
	if err != nil {
		return ""
	}
	return u.Host
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: development provider</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1b1b1b; }
.note { background: #fff4d6; border: 1px solid #e8c76a; padding: .5rem .75rem; border-radius: 4px; }
.problem { color: #a40000; font-weight: 600; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { font: inherit; padding: .3rem .5rem; width: 100%; box-sizing: border-box; }
button { font: inherit; padding: .4rem 1.2rem; margin: 1rem .5rem 0 0; }
</style>
</head>
<body>
<h1>Sign in to the development provider</h1>
<p class="note">This OpenID Connect provider runs on your machine for trying Nexus Broker out (make run,
NEXUS_DEV_PROVIDER). It has no passwords: you sign in as whoever you type. Never use it for anything real.</p>
<p><strong>{{.ClientID}}</strong> asks for:</p>
<ul>
{{range .Scopes}}<li><code>{{.Name}}</code>{{if .Words}}: {{.Words}}{{end}}</li>
{{else}}<li>nothing beyond your sign-in</li>
{{end}}</ul>
{{with .ReturnTo}}<p>Then your browser goes back to <strong>{{.}}</strong>.</p>{{end}}
<form method="post">
{{with .Problem}}<p class="problem" role="alert">{{.}}</p>{{end}}
<label for="username">Sign in as</label>
<input id="username" name="username" value="{{.Username}}" maxlength="64" autocomplete="username" autofocus>
<button type="submit" name="consent" value="allow">Allow</button>
<button type="submit" name="consent" value="deny">Deny</button>
</form>
</body>
</html>
`))

func showLoginPage(w http.ResponseWriter, status int, p loginPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, p)
}

// handleLoginAnswer takes the page's answer: Allow signs the person in as
// the name typed and answers the authorization request with a code, Deny
// answers it with access_denied; either way the browser goes straight back
// to the client. A form posted from another site is refused.
func (s *Server) handleLoginAnswer(w http.ResponseWriter, r *http.Request) {
	if !s.loginPage {
		http.Error(w, "login: this provider signs people in without a page (Options.LoginPage is off)", http.StatusMethodNotAllowed)
		return
	}
	next, ok := loginNext(w, r, s.issuer)
	if !ok {
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != s.issuer {
		http.Error(w, "login: the form was posted from another site", http.StatusForbidden)
		return
	}
	_ = r.ParseForm()
	page := loginPage{Request: next.Query(), Username: strings.TrimSpace(r.PostForm.Get("username"))}
	consent := r.PostForm.Get("consent")
	switch {
	case consent != "allow" && consent != "deny":
		page.Problem = "Choose Allow or Deny."
	case consent == "allow" && !usernamePattern.MatchString(page.Username):
		page.Problem = "Type a name to sign in as: letters, digits and . _ @ + -, at most 64."
	}
	if page.Problem != "" {
		showLoginPage(w, http.StatusBadRequest, page)
		return
	}
	ctx := r.Context()
	ar, err := s.provider.NewAuthorizeRequest(ctx, authorizeRequest(r, next))
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, issWriter{w, s.issuer}, ar, err)
		return
	}
	if consent == "allow" {
		s.mu.Lock()
		s.logins++
		s.mu.Unlock()
	}
	s.answerAuthorize(ctx, w, ar, page.Username, consent == "deny")
}

// authorizeRequest is the GET /authorize request next names, as fosite
// reads one, made from the page's POST.
func authorizeRequest(r *http.Request, next *url.URL) *http.Request {
	req := r.Clone(r.Context())
	req.Method = http.MethodGet
	req.URL = next
	req.Form, req.PostForm, req.MultipartForm = nil, nil, nil
	req.Body, req.ContentLength = http.NoBody, 0
	req.Header.Del("Content-Type")
	return req
}
