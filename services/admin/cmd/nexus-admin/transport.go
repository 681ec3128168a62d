package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// api is admin's operator API as the newer commands (apply, connections,
// keys) use it, over NATS (natsAPI, the default) or admin's HTTP API
// (httpAPI, with -http URL). Both speak the same messages; only the
// envelope differs.
type api interface {
	createProvider(ctx context.Context, doc json.RawMessage) (messages.Provider, error)
	listProviders(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error)
	updateProvider(ctx context.Context, ref string, patch json.RawMessage) (messages.Provider, error)
	deleteProvider(ctx context.Context, ref string) (messages.Provider, error)
	listConnections(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error)
	getConnection(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
	revokeConnection(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
	keysStatus(ctx context.Context) (messages.KeysStatus, error)
}

var (
	_ api = httpAPI{}
	_ api = natsAPI{}
)

// natsAPI sends each request to admin's NATS subject, with the operator's
// key in Nexus-Api-Key.
type natsAPI struct{ client *natsx.Client }

func (n natsAPI) createProvider(ctx context.Context, doc json.RawMessage) (out messages.Provider, err error) {
	return out, n.client.Request(ctx, messages.SubjectProvidersCreate, doc, &out)
}

func (n natsAPI) listProviders(ctx context.Context, req messages.ListProvidersRequest) (out messages.ListProvidersReply, err error) {
	return out, n.client.Request(ctx, messages.SubjectProvidersList, req, &out)
}

func (n natsAPI) updateProvider(ctx context.Context, ref string, patch json.RawMessage) (out messages.Provider, err error) {
	return out, n.client.Request(ctx, messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: ref, Patch: patch}, &out)
}

func (n natsAPI) deleteProvider(ctx context.Context, ref string) (out messages.Provider, err error) {
	return out, n.client.Request(ctx, messages.SubjectProvidersDelete, messages.ProviderRef{Provider: ref}, &out)
}

func (n natsAPI) listConnections(ctx context.Context, req messages.ListConnectionsRequest) (out messages.ListConnectionsReply, err error) {
	return out, n.client.Request(ctx, messages.SubjectAdminConnectionsList, req, &out)
}

func (n natsAPI) getConnection(ctx context.Context, ref messages.ConnectionRef) (out messages.Connection, err error) {
	return out, n.client.Request(ctx, messages.SubjectAdminConnectionsGet, ref, &out)
}

func (n natsAPI) revokeConnection(ctx context.Context, ref messages.ConnectionRef) (out messages.Connection, err error) {
	return out, n.client.Request(ctx, messages.SubjectAdminConnectionsRevoke, ref, &out)
}

func (n natsAPI) keysStatus(ctx context.Context) (out messages.KeysStatus, err error) {
	return out, n.client.Request(ctx, messages.SubjectKeysStatus, messages.KeysStatusRequest{}, &out)
}

// httpAPI sends each request to admin's HTTP API (cli.fetch: the bearer
// key, the contract's error bodies).
type httpAPI struct{ c *cli }

func (h httpAPI) call(ctx context.Context, method, path string, body any, out any) error {
	var data []byte
	contentType := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		data, contentType = b, "application/json"
	}
	reply, err := h.c.fetch(ctx, method, path, contentType, data)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("%s %s: the reply: %w", method, path, err)
	}
	return nil
}

func (h httpAPI) createProvider(ctx context.Context, doc json.RawMessage) (out messages.Provider, err error) {
	return out, h.call(ctx, http.MethodPost, "/v1/providers", doc, &out)
}

func (h httpAPI) listProviders(ctx context.Context, req messages.ListProvidersRequest) (out messages.ListProvidersReply, err error) {
	q := url.Values{}
	set(q, "type", string(req.Type))
	set(q, "cursor", req.Cursor)
	if req.Limit != 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	return out, h.call(ctx, http.MethodGet, withQuery("/v1/providers", q), nil, &out)
}

func (h httpAPI) updateProvider(ctx context.Context, ref string, patch json.RawMessage) (out messages.Provider, err error) {
	reply, err := h.c.fetch(ctx, http.MethodPatch, "/v1/providers/"+url.PathEscape(ref), "application/merge-patch+json", patch)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(reply, &out)
}

func (h httpAPI) deleteProvider(ctx context.Context, ref string) (out messages.Provider, err error) {
	return out, h.call(ctx, http.MethodDelete, "/v1/providers/"+url.PathEscape(ref), nil, &out)
}

func (h httpAPI) listConnections(ctx context.Context, req messages.ListConnectionsRequest) (out messages.ListConnectionsReply, err error) {
	q := url.Values{}
	set(q, "workspace_id", req.WorkspaceID)
	set(q, "provider", req.Provider)
	set(q, "status", string(req.Status))
	set(q, "cursor", req.Cursor)
	if req.Limit != 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	return out, h.call(ctx, http.MethodGet, withQuery("/v1/connections", q), nil, &out)
}

func (h httpAPI) getConnection(ctx context.Context, ref messages.ConnectionRef) (out messages.Connection, err error) {
	q := url.Values{}
	set(q, "workspace_id", ref.WorkspaceID)
	return out, h.call(ctx, http.MethodGet, withQuery("/v1/connections/"+url.PathEscape(ref.ConnectionID), q), nil, &out)
}

func (h httpAPI) revokeConnection(ctx context.Context, ref messages.ConnectionRef) (out messages.Connection, err error) {
	q := url.Values{}
	set(q, "workspace_id", ref.WorkspaceID)
	return out, h.call(ctx, http.MethodPost, withQuery("/v1/connections/"+url.PathEscape(ref.ConnectionID)+"/revoke", q), nil, &out)
}

func (h httpAPI) keysStatus(ctx context.Context) (out messages.KeysStatus, err error) {
	return out, h.call(ctx, http.MethodGet, "/v1/keys", nil, &out)
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// natsUser is the operators' NATS user unless NATS_USER names another.
const natsUser = "operator"

// connectNATS dials NATS_URL as the operator's NATS user (NATS_USER,
// default operator) with NATS_PASSWORD, or NATS_OPERATOR_PASSWORD as
// make run's keys.env names it; replies come to that user's inbox prefix,
// the only one it may read. NATS_CA_FILE, NATS_CERT_FILE and NATS_KEY_FILE
// are as for the services.
func connectNATS(getenv func(string) string) (*nats.Conn, error) {
	u := getenv("NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	user := getenv("NATS_USER")
	if user == "" {
		user = natsUser
	}
	password := getenv("NATS_PASSWORD")
	if password == "" {
		password = getenv("NATS_OPERATOR_PASSWORD")
	}
	opts := []nats.Option{nats.MaxReconnects(0)}
	if password != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	if ca := getenv("NATS_CA_FILE"); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert := getenv("NATS_CERT_FILE"); cert != "" {
		opts = append(opts, nats.ClientCert(cert, getenv("NATS_KEY_FILE")))
	}
	nc, err := natsx.Connect(u, user, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS_URL: %w", err)
	}
	return nc, nil
}
