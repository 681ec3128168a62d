// Package httpapi serves the provider registry as an operator JSON API under
// /v1/providers. Errors become the contract's JSON errors in
// httpserver.WriteError, the one place for this transport. Authentication
// (a bearer API key) is wrapped around it by the caller.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// MaxBody bounds request bodies.
const MaxBody = 1 << 20

// Registry is the service layer the routes call.
type Registry interface {
	Create(ctx context.Context, doc json.RawMessage) (messages.Provider, error)
	Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
	List(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error)
	Update(ctx context.Context, u messages.ProviderUpdate) (messages.Provider, error)
	Delete(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
}

type api struct {
	reg Registry
	log *slog.Logger
}

// New returns the /v1/providers routes.
func New(reg Registry, log *slog.Logger) http.Handler {
	a := &api{reg: reg, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/providers", a.create)
	mux.HandleFunc("GET /v1/providers", a.list)
	mux.HandleFunc("GET /v1/providers/{ref}", a.get)
	mux.HandleFunc("PATCH /v1/providers/{ref}", a.update)
	mux.HandleFunc("DELETE /v1/providers/{ref}", a.delete)
	// Any other method on a known route: 405 (the patterns without a method
	// are less specific than those above, so only the others reach them).
	mux.Handle("/v1/providers", methodNotAllowed("/v1/providers", "GET", "POST"))
	mux.Handle("/v1/providers/{ref}", methodNotAllowed("/v1/providers/{ref}", "GET", "PATCH", "DELETE"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteError(w, log, messages.Errorf(messages.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// methodNotAllowed answers 405 with an Allow header (HEAD comes with GET)
// and the contract's error body, code invalid_request, naming the methods
// route takes. 405 is HTTP's own status for this, so it is written here
// rather than derived from the code in httpserver.WriteError.
func methodNotAllowed(route string, methods ...string) http.Handler {
	allow := strings.Join(methods, ", ")
	if slices.Contains(methods, http.MethodGet) {
		allow = strings.Replace(allow, "GET", "GET, HEAD", 1)
	}
	said := methods[0]
	if len(methods) > 1 {
		said = strings.Join(methods[:len(methods)-1], ", ") + " or " + methods[len(methods)-1]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpserver.WriteJSON(w, http.StatusMethodNotAllowed, messages.ErrorBody{Error: messages.Errorf(messages.CodeInvalidRequest,
			"%s is not allowed on %s; use %s", r.Method, route, said)})
	})
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	// The registry reads the document itself, to report every problem of
	// it at once; Decode first gives the malformed-JSON message every other
	// body gets.
	var doc json.RawMessage
	if err := readJSON(w, r, &doc); err != nil {
		a.fail(w, err)
		return
	}
	out, err := a.reg.Create(r.Context(), doc)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Location", "/v1/providers/"+url.PathEscape(out.ID))
	httpserver.WriteJSON(w, http.StatusCreated, out)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	a.reply(w)(a.reg.Get(r.Context(), messages.ProviderRef{Provider: r.PathValue("ref")}))
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := messages.ListProvidersRequest{Type: messages.ProviderType(q.Get("type")), Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			a.fail(w, messages.Errorf(messages.CodeInvalidRequest, "limit must be an integer"))
			return
		}
		req.Limit = n
	}
	out, err := a.reg.List(r.Context(), req)
	if err != nil {
		a.fail(w, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil ||
		(mt != "application/merge-patch+json" && mt != "application/json") {
		a.fail(w, messages.Errorf(messages.CodeInvalidRequest, "Content-Type must be application/merge-patch+json or application/json"))
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		a.fail(w, err)
		return
	}
	// The registry checks the patch is one JSON object; Decode first gives
	// the same malformed-JSON message as every other body.
	var probe any
	if err := natsx.Decode(body, &probe); err != nil {
		a.fail(w, err)
		return
	}
	a.reply(w)(a.reg.Update(r.Context(), messages.ProviderUpdate{Provider: r.PathValue("ref"), Patch: body}))
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	a.reply(w)(a.reg.Delete(r.Context(), messages.ProviderRef{Provider: r.PathValue("ref")}))
}

// reply writes a provider, or the error.
func (a *api) reply(w http.ResponseWriter) func(messages.Provider, error) {
	return func(p messages.Provider, err error) {
		if err != nil {
			a.fail(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, p)
	}
}

func (a *api) fail(w http.ResponseWriter, err error) { httpserver.WriteError(w, a.log, err) }

// readBody reads at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "request body is larger than 1 MiB")
	}
	if err != nil {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "could not read the request body")
	}
	return body, nil
}

// readJSON reads a JSON body into v with the same rules as the NATS
// endpoints (natsx.Decode).
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return natsx.Decode(body, v)
}
