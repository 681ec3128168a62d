package handshake_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"

	"github.com/nexus-broker/nexus/messages"
)

// staticProviders are what the fake admin serves for static credentials: an
// API key, a username and password, and AWS keys.
func staticProviders() []messages.Provider {
	return []messages.Provider{
		{ID: "prov-openai", Name: "openai", Aliases: []string{"oai"}, Type: messages.ProviderStatic,
			CredentialSchema: json.RawMessage(`{"type":"object","properties":{
				"api_key":{"type":"string","title":"API key","description":"Create one under Settings, API keys.","minLength":8},
				"region":{"type":"string","title":"Region","enum":["eu","us"],"default":"eu"}},
				"required":["api_key"]}`),
			Strategy: &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "Authorization", "prefix": "Bearer "}}},
		{ID: "prov-db", Name: "db", Type: messages.ProviderStatic,
			CredentialSchema: json.RawMessage(`{"type":"object","properties":{
				"username":{"type":"string","title":"User name"},
				"password":{"type":"string","title":"Password"},
				"port":{"type":"integer","title":"Port","minimum":1,"maximum":65535},
				"ratio":{"type":"number"},
				"sandbox":{"type":"boolean","title":"Use the sandbox"}},
				"required":["username","password","port"]}`),
			Strategy: &messages.Strategy{Type: messages.StrategyBasicAuth, Config: map[string]any{}}},
		{ID: "prov-aws", Name: "aws", Type: messages.ProviderStatic,
			CredentialSchema: json.RawMessage(`{"type":"object","properties":{
				"access_key_id":{"type":"string","title":"Access key ID","writeOnly":false,"pattern":"^[A-Z0-9]{16,32}$"},
				"secret_access_key":{"type":"string","title":"Secret access key"},
				"session_token":{"type":"string","title":"Session token","description":"Only for temporary credentials."}},
				"required":["access_key_id","secret_access_key"]}`),
			Strategy: &messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}}},
	}
}

// input is one form control as a browser sees it.
type input struct {
	Tag, Name, Type, ID, Value string
	Required, Checked          bool
	Options                    []string
	Selected                   string
	Label, Help, Error         string
}

// page is a parsed credential form.
type page struct {
	Status int
	Body   string
	Resp   *http.Response
	Action string
	Token  string
	Inputs []input // in document order, the hidden token excluded
	Alert  string
}

func (p *page) input(name string) input {
	for _, in := range p.Inputs {
		if in.Name == name {
			return in
		}
	}
	return input{}
}

func (p *page) names() []string {
	var out []string
	for _, in := range p.Inputs {
		out = append(out, in.Name)
	}
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// parseForm reads the form the way a browser would.
func parseForm(t *testing.T, resp *http.Response, body string) *page {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	p := &page{Status: resp.StatusCode, Body: body, Resp: resp}
	labels := map[string]string{}
	byID := map[string]string{}
	var walk func(*html.Node, *html.Node)
	walk = func(n, label *html.Node) {
		if n.Type == html.ElementNode {
			id, _ := attr(n, "id")
			switch n.Data {
			case "form":
				p.Action, _ = attr(n, "action")
			case "label":
				if f, ok := attr(n, "for"); ok {
					labels[f] = text(n)
				}
				label = n
			case "p":
				if id != "" {
					byID[id] = text(n)
				}
				if role, _ := attr(n, "role"); role == "alert" {
					p.Alert = text(n)
				}
			case "input", "select":
				in := input{Tag: n.Data, ID: id}
				in.Name, _ = attr(n, "name")
				in.Type, _ = attr(n, "type")
				in.Value, _ = attr(n, "value")
				_, in.Required = attr(n, "required")
				_, in.Checked = attr(n, "checked")
				if n.Data == "select" {
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						if c.Type == html.ElementNode && c.Data == "option" {
							v, _ := attr(c, "value")
							in.Options = append(in.Options, v)
							if _, sel := attr(c, "selected"); sel {
								in.Selected = v
							}
						}
					}
				}
				if in.Type == "hidden" {
					p.Token = in.Value
				} else {
					if label != nil && in.Type == "checkbox" {
						labels[id] = text(label)
					}
					p.Inputs = append(p.Inputs, in)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, label)
		}
	}
	walk(doc, nil)
	for i := range p.Inputs {
		in := &p.Inputs[i]
		in.Label = labels[in.ID]
		in.Help = byID[in.ID+"-help"]
		in.Error = byID[in.ID+"-err"]
	}
	return p
}

// openForm begins a consent for provider and opens its link in browser b.
func (e *env) openForm(b *http.Client, provider string) (messages.BeginReply, *page) {
	e.t.Helper()
	rep, err := e.begin(messages.BeginRequest{Provider: provider, WorkspaceID: "ws-1", ReturnURL: returnURL})
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	resp, body := get(e.t, b, rep.AuthURL)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("form: HTTP %d: %s", resp.StatusCode, body)
	}
	return rep, parseForm(e.t, resp, body)
}

// post submits values (plus the token, when not empty) to the form's action
// as browser b, with extra headers.
func (e *env) post(b *http.Client, action, token string, values url.Values, hdr map[string]string) (*http.Response, string) {
	e.t.Helper()
	v := url.Values{}
	for k, vs := range values {
		v[k] = vs
	}
	if token != "" {
		v.Set("_nexus_csrf", token)
	}
	req, err := http.NewRequest(http.MethodPost, e.public+action, strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.public)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, val := range hdr {
		if val == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, val)
		}
	}
	resp, err := b.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestStaticFormAsABrowserSeesIt(t *testing.T) {
	e := newEnv(t)
	type want struct {
		name, typ, label string
		required         bool
	}
	tests := []struct {
		provider string
		inputs   []want
		check    func(t *testing.T, p *page)
	}{
		{"oai", []want{{"api_key", "password", "API key *", true}, {"region", "", "Region", false}}, func(t *testing.T, p *page) {
			if in := p.input("api_key"); in.Help != "Create one under Settings, API keys." || in.Value != "" {
				t.Errorf("api_key: %+v", in)
			}
			if in := p.input("region"); in.Tag != "select" || !slices.Equal(in.Options, []string{"", "eu", "us"}) || in.Selected != "eu" {
				t.Errorf("region select: %+v", in)
			}
		}},
		{"db", []want{{"username", "text", "User name *", true}, {"password", "password", "Password *", true},
			{"port", "number", "Port *", true}, {"ratio", "number", "ratio", false}, {"sandbox", "checkbox", "Use the sandbox", false}}, func(t *testing.T, p *page) {
			for _, frag := range []string{`step="1"`, `min="1"`, `max="65535"`, `step="any"`} {
				if !strings.Contains(p.Body, frag) {
					t.Errorf("the form has no %s", frag)
				}
			}
		}},
		{"aws", []want{{"access_key_id", "text", "Access key ID *", true}, {"secret_access_key", "password", "Secret access key *", true},
			{"session_token", "password", "Session token", false}}, func(t *testing.T, p *page) {
			if in := p.input("session_token"); in.Help != "Only for temporary credentials." {
				t.Errorf("session_token: %+v", in)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			rep, p := e.openForm(e.browser(), tc.provider)
			if !strings.HasPrefix(rep.AuthURL, e.public+"/v1/connect/") {
				t.Fatalf("auth_url = %s", rep.AuthURL)
			}
			// The form page keeps the real Origin on its own POST (browsers send
			// "Origin: null" under no-referrer) and sends nothing elsewhere.
			if rp := p.Resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
				t.Errorf("form page Referrer-Policy = %q, want same-origin", rp)
			}
			p.Resp.Header.Set("Referrer-Policy", "no-referrer")
			checkSecurityHeaders(t, p.Resp)
			if csp := p.Resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example.com;") {
				t.Errorf("CSP = %q", csp)
			}
			if p.Action != strings.TrimPrefix(rep.AuthURL, e.public) || p.Token == "" {
				t.Fatalf("form action %q, token %q", p.Action, p.Token)
			}
			if len(p.Inputs) != len(tc.inputs) {
				t.Fatalf("inputs %v, want %d", p.names(), len(tc.inputs))
			}
			for i, w := range tc.inputs {
				in := p.Inputs[i]
				if in.Name != w.name || in.Type != w.typ || in.Label != w.label || in.Required != w.required {
					t.Errorf("input %d = %+v, want %+v", i, in, w)
				}
			}
			tc.check(t, p)
			var names []string
			for _, c := range p.Resp.Cookies() {
				names = append(names, c.Name)
				if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != p.Action || c.MaxAge < 590 {
					t.Errorf("cookie %+v", c)
				}
			}
			if len(names) != 2 {
				t.Errorf("cookies %v, want the binding and the CSRF nonce", names)
			}
		})
	}
	e.fakes.mu.Lock()
	defer e.fakes.mu.Unlock()
	if c := e.fakes.creates[0]; c.ProviderID != "prov-openai" || len(c.Scopes) != 0 {
		t.Errorf("vault create = %+v (the provider was named by its alias)", c)
	}
}

func TestStaticFormSubmit(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rep, p := e.openForm(b, "db")
	values := url.Values{"username": {"alice"}, "password": {"pw-SECRET-1"}, "port": {"5432"}, "ratio": {"0.5"}, "sandbox": {"true"}}
	resp, body := e.post(b, p.Action, p.Token, values, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, resp)
	if got, want := resp.Header.Get("Location"), returnURL+"?connection_id="+rep.ConnectionID+"&status=active"; got != want {
		t.Fatalf("back to %s, want %s", got, want)
	}
	e.fakes.mu.Lock()
	wire := e.fakes.stores[0]
	e.fakes.mu.Unlock()
	var got struct {
		ConnectionID string                     `json:"connection_id"`
		Credentials  map[string]json.RawMessage `json:"credentials"`
	}
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"username": `"alice"`, "password": `"pw-SECRET-1"`, "port": `5432`, "ratio": `0.5`, "sandbox": `true`} {
		if string(got.Credentials[k]) != v {
			t.Errorf("vault got %s = %s, want %s", k, got.Credentials[k], v)
		}
	}
	if got.ConnectionID != rep.ConnectionID || len(got.Credentials) != 5 {
		t.Errorf("vault got %s", wire)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge >= 0 {
			t.Errorf("cookie %s not cleared", c.Name)
		}
	}

	// Replayed: the flow is gone.
	resp, body = e.post(b, p.Action, p.Token, values, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("replay: HTTP %d: %s", resp.StatusCode, body)
	}
	if n := e.fakes.storeCount(); n != 1 {
		t.Fatalf("vault store called %d times, want 1", n)
	}

	// Double submission, racing: exactly one reaches the vault.
	b2 := e.browser()
	_, p2 := e.openForm(b2, "db")
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.post(b2, p2.Action, p2.Token, values, nil)
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	var seeOther, used int
	for c := range codes {
		switch c {
		case http.StatusSeeOther:
			seeOther++
		case http.StatusBadRequest:
			used++
		}
	}
	if seeOther != 1 || used != 7 || e.fakes.storeCount() != 2 {
		t.Fatalf("racing submissions: %d redirected, %d refused, %d stores", seeOther, used, e.fakes.storeCount())
	}
}

func TestStaticFormInvalidInput(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	_, p := e.openForm(b, "db")
	resp, body := e.post(b, p.Action, p.Token, url.Values{"username": {"alice <b>"}, "password": {""}, "port": {"80.5"}, "ratio": {"x"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	re := parseForm(t, resp, body)
	if in := re.input("username"); in.Value != "alice <b>" || in.Error != "" {
		t.Errorf("username: %+v", in)
	}
	if in := re.input("password"); in.Error != "This field is required." {
		t.Errorf("password: %+v", in)
	}
	if in := re.input("port"); in.Error != "Enter a whole number." || in.Value != "80.5" {
		t.Errorf("port: %+v", in)
	}
	if in := re.input("ratio"); in.Error != "Enter a number." {
		t.Errorf("ratio: %+v", in)
	}
	if strings.Contains(body, "<b>") {
		t.Error("a submitted value was not escaped")
	}

	// A secret that breaks a rule is reported, and not echoed.
	_, pk := e.openForm(b, "openai")
	resp, body = e.post(b, pk.Action, pk.Token, url.Values{"api_key": {"SECRET7"}, "region": {"mars"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, "SECRET7") {
		t.Fatalf("HTTP %d (secret echoed: %v)", resp.StatusCode, strings.Contains(body, "SECRET7"))
	}
	re = parseForm(t, resp, body)
	if in := re.input("api_key"); in.Error != "Enter at least 8 characters." || in.Value != "" {
		t.Errorf("api_key: %+v", in)
	}
	if in := re.input("region"); in.Error != "Choose one of the allowed values." {
		t.Errorf("region: %+v", in)
	}
	_, pa := e.openForm(b, "aws")
	resp, body = e.post(b, pa.Action, pa.Token, url.Values{"access_key_id": {"lower-case"}, "secret_access_key": {"SECRET-aws"}}, nil)
	re = parseForm(t, resp, body)
	if in := re.input("access_key_id"); resp.StatusCode != 422 || in.Error != "This value does not have the expected format." || in.Value != "lower-case" {
		t.Errorf("access_key_id: HTTP %d %+v", resp.StatusCode, in)
	}
	if strings.Contains(body, "SECRET-aws") {
		t.Error("a secret was echoed")
	}
	if e.fakes.storeCount() != 0 {
		t.Fatal("invalid input reached the vault")
	}

	// The flow was not used up: the re-rendered form (with its new token) works.
	resp, body = e.post(b, re.Action, re.Token, url.Values{"access_key_id": {"AKIAIOSFODNN7EXAMPLE"}, "secret_access_key": {"SECRET-aws"}, "session_token": {""}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "status=active") {
		t.Fatalf("after fixing: HTTP %d: %s", resp.StatusCode, body)
	}
	e.fakes.mu.Lock()
	wire := string(e.fakes.stores[0])
	e.fakes.mu.Unlock()
	if strings.Contains(wire, "session_token") {
		t.Errorf("an empty optional field was sent: %s", wire)
	}
}

func TestStaticFormRefusals(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	rep, p := e.openForm(owner, "openai")
	_, other := e.openForm(owner, "openai") // another flow, same browser
	good := url.Values{"api_key": {"sk-0123456789"}}
	tests := []struct {
		name   string
		b      *http.Client
		token  string
		hdr    map[string]string
		status int
		text   string
	}{
		{"missing CSRF token", owner, "", nil, 403, "could not be verified"},
		{"wrong CSRF token", owner, p.Token[:len(p.Token)-4] + "AAAA", nil, 403, "could not be verified"},
		{"another flow's token", owner, other.Token, nil, 403, "could not be verified"},
		{"cross-site fetch", owner, p.Token, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "only be sent from its own page"},
		{"same-site sibling", owner, p.Token, map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "only be sent from its own page"},
		{"foreign origin", owner, p.Token, map[string]string{"Origin": "https://evil.example.com", "Sec-Fetch-Site": ""}, 403, "only be sent from its own page"},
		{"null origin", owner, p.Token, map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}, 403, "only be sent from its own page"},
		{"foreign referer", owner, p.Token, map[string]string{"Origin": "", "Sec-Fetch-Site": "", "Referer": "https://evil.example.com/x"}, 403, "only be sent from its own page"},
		{"another browser", e.browser(), p.Token, nil, 403, "different browser"},
		{"not a form", owner, p.Token, map[string]string{"Content-Type": "application/json"}, 400, "could not be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.post(tc.b, p.Action, tc.token, good, tc.hdr)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) || resp.Header.Get("Location") != "" {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			checkSecurityHeaders(t, resp)
		})
	}
	big := url.Values{"api_key": {strings.Repeat("k", 70<<10)}}
	if resp, _ := e.post(owner, p.Action, p.Token, big, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB body: HTTP %d", resp.StatusCode)
	}
	if n := e.fakes.storeCount(); n != 0 {
		t.Fatalf("a refused submission reached the vault (%d)", n)
	}
	// None of that used the flow up: its owner finishes it.
	resp, body := e.post(owner, p.Action, p.Token, good, map[string]string{"Origin": "", "Sec-Fetch-Site": ""})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnURL+"?connection_id="+rep.ConnectionID+"&status=active" {
		t.Fatalf("owner: HTTP %d %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// An OAuth flow takes no form posts.
	b := e.browser()
	rep2 := e.mustBegin("plain")
	e.connect(b, rep2.AuthURL)
	if resp, _ := e.post(b, strings.TrimPrefix(rep2.AuthURL, e.public), "x", good, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST to an OAuth flow: HTTP %d", resp.StatusCode)
	}
}

func TestStaticVaultRefuses(t *testing.T) {
	e := newEnv(t)
	e.fakes.mu.Lock()
	e.fakes.storeFn = func(x messages.VaultStoreStatic) error {
		if x.Credentials["api_key"] == "sk-bad-key-000" {
			return messages.Errorf(messages.CodeInvalidRequest, "the provider did not accept the credentials")
		}
		return nil
	}
	e.fakes.mu.Unlock()
	b := e.browser()
	rep, p := e.openForm(b, "openai")
	resp, body := e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-bad-key-000"}}, nil)
	want := returnURL + "?connection_id=" + rep.ConnectionID + "&error=invalid_request&status=failed"
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("HTTP %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// The flow is spent, so the handshake asks the vault to fail the
	// connection (a no-op for one the vault already failed).
	if f := e.fakes.failures(); len(f) != 1 || f[0].ConnectionID != rep.ConnectionID || f[0].Reason.Code != "invalid_request" {
		t.Errorf("failures sent to the vault: %+v, want one invalid_request for %s", f, rep.ConnectionID)
	} else if f[0].Reason.Message != "the credentials could not be stored (invalid_request)" {
		t.Errorf("reason message = %q", f[0].Reason.Message)
	}
	// The vault failing unexpectedly.
	e.fakes.mu.Lock()
	e.fakes.storeFn = func(messages.VaultStoreStatic) error { return errors.New("boom") }
	e.fakes.mu.Unlock()
	rep, p = e.openForm(b, "openai")
	resp, _ = e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-0123456789"}}, nil)
	if want := returnURL + "?connection_id=" + rep.ConnectionID + "&error=internal&status=failed"; resp.Header.Get("Location") != want {
		t.Fatalf("Location %q, want %q", resp.Header.Get("Location"), want)
	}
}

// TestStaticFormNullOrigin: under a strict referrer policy a browser's own
// same-origin POST carries "Origin: null"; Sec-Fetch-Site: same-origin is
// what counts, so the submission goes through.
func TestStaticFormNullOrigin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	_, p := e.openForm(b, "openai")
	resp, body := e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-0123456789"}}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "status=active") {
		t.Fatalf("same-origin POST with Origin: null: HTTP %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestStaticVerificationRetry: credentials the vault's verification request
// refused, or could not check, show the form again in the broker's words;
// the connection is not failed and the same link finishes the consent. The
// attempts that reach the vault are bounded per connection.
func TestStaticVerificationRetry(t *testing.T) {
	e := newEnv(t, map[string]string{"CREDENTIAL_FORM_RATE": "3/1h"})
	e.fakes.mu.Lock()
	e.fakes.storeFn = func(x messages.VaultStoreStatic) error {
		switch x.Credentials["api_key"] {
		case "sk-wrong-key-000":
			return messages.Errorf(messages.CodeProviderError, "the credentials were not accepted: the provider's verification request answered HTTP 401")
		case "sk-down-key-000":
			return messages.Errorf(messages.CodeUnavailable, "the provider's verification request got no answer (timeout or network error); try again later")
		}
		return nil
	}
	e.fakes.mu.Unlock()
	b := e.browser()
	rep, p := e.openForm(b, "openai")
	for _, tc := range []struct{ key, want string }{
		{"sk-wrong-key-000", "These credentials were refused. Check them and try again."},
		{"sk-down-key-000", "The service could not be reached; try again."},
	} {
		resp, body := e.post(b, p.Action, p.Token, url.Values{"api_key": {tc.key}}, nil)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Fatalf("%s: HTTP %d: %s", tc.key, resp.StatusCode, body)
		}
		if strings.Contains(body, tc.key) || strings.Contains(body, "HTTP 401") || strings.Contains(body, "timeout") {
			t.Fatalf("%s: the page repeats the key or the vault's words: %s", tc.key, body)
		}
		p = parseForm(t, resp, body)
	}
	if f := e.fakes.failures(); len(f) != 0 {
		t.Fatalf("the connection was failed: %+v", f)
	}
	resp, body := e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-0123456789"}}, nil)
	if want := returnURL + "?connection_id=" + rep.ConnectionID + "&status=active"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("HTTP %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if n := e.fakes.storeCount(); n != 3 {
		t.Fatalf("%d stores, want 3", n)
	}

	// A fourth attempt within the window does not reach the vault.
	_, p = e.openForm(b, "openai")
	for range 3 {
		resp, body := e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-wrong-key-000"}}, nil)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		p = parseForm(t, resp, body)
	}
	resp, body = e.post(b, p.Action, p.Token, url.Values{"api_key": {"sk-wrong-key-000"}}, nil)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many attempts. Wait ") {
		t.Fatalf("over the limit: HTTP %d: %s", resp.StatusCode, body)
	}
	if n := e.fakes.storeCount(); n != 6 {
		t.Fatalf("%d stores, want 6", n)
	}
}
