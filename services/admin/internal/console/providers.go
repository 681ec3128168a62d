package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// paramField prefixes a template param's form field.
const paramField = "param_"

// providers lists the registry, a page at a time.
func (c *Console) providers(w http.ResponseWriter, r *http.Request) {
	out, err := c.o.Registry.List(r.Context(), messages.ListProvidersRequest{Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		c.fail(w, r, "Providers", err)
		return
	}
	c.render(w, r, http.StatusOK, "providers", out, view{Title: "Providers", Nav: "providers", Notice: notice(r)})
}

// templateForm is the create form for one catalog template.
type templateForm struct {
	Template messages.Template
	// OAuth: the template needs a client id and secret.
	OAuth bool
}

// newProviderData is the create page: the catalog, or one template's form.
type newProviderData struct {
	Catalog []messages.Template
	Form    *templateForm
}

// newProvider shows the catalog and the by-hand form, or, with
// ?template=, that template's form.
func (c *Console) newProvider(w http.ResponseWriter, r *http.Request) {
	var d newProviderData
	if name := r.URL.Query().Get("template"); name != "" {
		t, err := c.o.Templates.Get(r.Context(), messages.TemplateRef{Template: name})
		if err != nil {
			c.fail(w, r, "New provider", err)
			return
		}
		d.Form = &templateForm{Template: t, OAuth: templateType(t) != messages.ProviderStatic}
	} else {
		cat, err := c.o.Templates.List(r.Context(), struct{}{})
		if err != nil {
			c.fail(w, r, "New provider", err)
			return
		}
		d.Catalog = cat.Templates
	}
	c.render(w, r, http.StatusOK, "provider_new", d, view{Title: "New provider", Nav: "providers"})
}

// templateType is the type of provider a template makes.
func templateType(t messages.Template) messages.ProviderType {
	var doc struct {
		Type messages.ProviderType `json:"type"`
	}
	_ = json.Unmarshal(t.Provider, &doc) // the catalog is checked at start
	return doc.Type
}

// createProvider registers a provider from a template's form, or from a
// document written by hand; the client secret, when given, goes with it to
// the registry (and on to the vault) and is never shown again.
func (c *Console) createProvider(w http.ResponseWriter, r *http.Request) {
	doc, err := providerDocument(r.PostForm)
	if err != nil {
		c.fail(w, r, "New provider", err)
		return
	}
	p, err := c.o.Registry.Create(r.Context(), doc)
	if err != nil {
		c.fail(w, r, "New provider", err)
		return
	}
	http.Redirect(w, r, Prefix+"providers/"+url.PathEscape(p.ID)+"?notice=created", http.StatusSeeOther)
}

// providerDocument is providers.create's document from the form.
func providerDocument(f url.Values) (json.RawMessage, error) {
	doc := map[string]any{}
	if f.Get("mode") == "document" {
		if err := json.Unmarshal([]byte(f.Get("document")), &doc); err != nil {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "the provider document must be one JSON object")
		}
	} else {
		doc["template"] = f.Get("template")
		params := map[string]string{}
		for k, vs := range f {
			if name, ok := strings.CutPrefix(k, paramField); ok && len(vs) > 0 && vs[0] != "" {
				params[name] = vs[0]
			}
		}
		if len(params) > 0 {
			doc["params"] = params
		}
		setIf(doc, "name", f.Get("name"))
		setIf(doc, "client_id", f.Get("client_id"))
		if a := fields(f.Get("aliases")); len(a) > 0 {
			doc["aliases"] = a
		}
	}
	setIf(doc, "client_secret", f.Get("client_secret"))
	b, err := json.Marshal(doc)
	return b, err
}

func setIf(doc map[string]any, name, v string) {
	if v = strings.TrimSpace(v); v != "" {
		doc[name] = v
	}
}

// fields splits a list typed as words separated by commas or spaces.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// providerData is one provider's page.
type providerData struct {
	P     messages.Provider
	OAuth bool
}

// provider shows one provider and its edit form. The client secret is
// never rendered: only whether one is set.
func (c *Console) provider(w http.ResponseWriter, r *http.Request) {
	p, err := c.o.Registry.Get(r.Context(), messages.ProviderRef{Provider: r.PathValue("id")})
	if err != nil {
		c.fail(w, r, "Provider", err)
		return
	}
	p.ClientSecret = "" // never sent by the registry; never rendered whatever it sends
	c.render(w, r, http.StatusOK, "provider", providerData{P: p, OAuth: p.Type != messages.ProviderStatic},
		view{Title: p.Name, Nav: "providers", Notice: notice(r)})
}

// updateProvider patches aliases, scopes and (OAuth) the client id, and
// replaces the client secret only when a new one is typed.
func (c *Console) updateProvider(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	patch := map[string]any{"aliases": orEmpty(fields(f.Get("aliases")))}
	if f.Has("scopes") {
		patch["scopes"] = orEmpty(fields(f.Get("scopes")))
	}
	setIf(patch, "client_id", f.Get("client_id"))
	setIf(patch, "client_secret", f.Get("client_secret"))
	body, err := json.Marshal(patch)
	if err != nil {
		c.fail(w, r, "Provider", err)
		return
	}
	p, err := c.o.Registry.Update(r.Context(), messages.ProviderUpdate{Provider: r.PathValue("id"), Patch: body})
	if err != nil {
		c.fail(w, r, "Provider", err)
		return
	}
	http.Redirect(w, r, Prefix+"providers/"+url.PathEscape(p.ID)+"?notice=saved", http.StatusSeeOther)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// notices are the fixed words a redirect may ask a page to show (never
// text from the URL itself).
var notices = map[string]string{
	"created": "Provider created.",
	"saved":   "Saved.",
	"revoked": "Connection revoked.",
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("notice")] }
