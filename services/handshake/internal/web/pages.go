package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
)

//go:embed templates/page.html templates/form.html
var templateFS embed.FS

var (
	pageTemplate = template.Must(template.ParseFS(templateFS, "templates/page.html"))
	formTemplate = template.Must(template.ParseFS(templateFS, "templates/form.html"))
)

// style is the pages' only stylesheet; the CSP allows exactly it by hash.
const style = `body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}` +
	`main{max-width:32rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.1)}` +
	`h1{font-size:1.3rem;margin-top:0}.hint{color:#5a6270;font-size:.95rem}` +
	`.field{margin:1rem 0}label{display:block;font-weight:600;margin-bottom:.3rem}label.check{font-weight:400}` +
	`input:not([type=checkbox]),select{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #b8bec9;border-radius:4px}` +
	`[aria-invalid=true]{border-color:#b3261e}.help{color:#5a6270;font-size:.85rem;margin:.3rem 0 0}` +
	`.err{color:#b3261e;font-size:.9rem;margin:.3rem 0 0}.req{color:#b3261e}` +
	`button{margin-top:.5rem;padding:.6rem 1.2rem;font:inherit;border:0;border-radius:4px;background:#1d4ed8;color:#fff;cursor:pointer}`

var csp = formCSP("'none'")

// formCSP is the pages' CSP with the given form-action sources. The hosted
// form posts to itself ('self') and is then redirected to the app's
// return_url, which form-action must allow too: browsers apply it to the
// redirects that follow a submission.
func formCSP(formAction string) string {
	sum := sha256.Sum256([]byte(style))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src 'none'; base-uri 'none'; form-action " + formAction + "; frame-ancestors 'none'"
}

// page is what a person sees when the browser cannot go back to the app.
// Every field is fixed text chosen by the handshake, never provider input.
type page struct {
	Status  int
	Title   string
	Message string
	Hint    string
}

// The pages a person can meet.
var (
	pageUnknownLink = page{http.StatusNotFound, "This sign-in link is not valid",
		"This sign-in link is not valid or has expired.", "Go back to the app and start again."}
	pageExpiredLink = page{http.StatusGone, "This sign-in link has expired",
		"This sign-in link has expired.", "Go back to the app and start again."}
	pageBadState = page{http.StatusBadRequest, "Sign-in could not be completed",
		"This sign-in response is not valid or has expired.", "Go back to the app and start again."}
	pageUsed = page{http.StatusBadRequest, "Sign-in could not be completed",
		"This sign-in link was already used or has expired.", "Go back to the app and start again."}
	pageBrowserMismatch = page{http.StatusBadRequest, "Sign-in could not be completed",
		"This sign-in was started in a different browser, or your browser blocked a cookie it needs.",
		"Go back to the app and start again in this browser."}
	pageUnavailable = page{http.StatusServiceUnavailable, "Temporarily unavailable",
		"The sign-in service is temporarily unavailable.", "Wait a moment, then try again."}
	pageNotFound = page{http.StatusNotFound, "Page not found", "There is nothing here.", ""}

	// The hosted credential form's refusals.
	pageCrossSite = page{http.StatusForbidden, "Request refused",
		"This form can only be sent from its own page.", "Go back to the app and start again."}
	pageFormBrowser = page{http.StatusForbidden, "Request refused",
		"This form was opened in a different browser, or your browser blocked a cookie it needs.",
		"Open the link from the app again in this browser."}
	pageFormToken = page{http.StatusForbidden, "Request refused",
		"This form could not be verified. It may have been opened in another tab or changed since it was shown.",
		"Go back, reload the page, and enter your credentials again."}
	pageTooLarge = page{http.StatusRequestEntityTooLarge, "Request refused",
		"What was sent is too large.", "Go back and try again."}
	pageBadForm = page{http.StatusBadRequest, "Request refused",
		"What was sent could not be read.", "Go back and try again."}
)

type pageData struct {
	page
	Style template.CSS
}

func (p page) render(w http.ResponseWriter) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pageData{page: p, Style: template.CSS(style)}); err != nil {
		http.Error(w, p.Message, p.Status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}
