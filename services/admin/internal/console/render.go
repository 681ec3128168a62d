package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// view is what every page template reads.
type view struct {
	Title  string
	Nav    string // the section the page belongs to
	CSRF   string // the session's (or the login form's) token
	Error  string
	Notice string
	Data   any
}

// pages are the parsed templates, each page with the layout.
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"join": strings.Join,
}

// loadPages parses every page with layout.html.
func loadPages() (pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := pages{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p[name] = t
	}
	return p, nil
}

// render writes page with v, the session's token filled in. It renders into
// a buffer first, so a template error is a 500, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, data any, v view) {
	if v.CSRF == "" {
		v.CSRF = sessionOf(r.Context()).CSRF
	}
	if data != nil {
		v.Data = data
	}
	t, ok := c.pages[page]
	if !ok {
		c.o.Log.Error("console: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		c.o.Log.Error("console: render failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// fail renders err on page's error view: a contract error in its own
// (user-facing) words, anything else as a generic failure that is logged.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	status, msg := c.describe(err)
	c.render(w, r, status, "error", nil, view{Title: title, Error: msg})
}

// describe is the status and the words an operator sees for err.
func (c *Console) describe(err error) (int, string) {
	var me *messages.Error
	if errors.As(err, &me) {
		return me.Code.Status(), me.Message
	}
	c.o.Log.Error("console: request failed", "err", err)
	return http.StatusInternalServerError, "Something went wrong; the error is in admin's log."
}
