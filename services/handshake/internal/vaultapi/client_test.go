package vaultapi

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const (
	apiKey = "vaultapi-test-key-0123456789"
	prefix = "hstest"
)

// vault stands in for the vault on a real NATS server: each subject answers
// with reply(subject) and records the body it received.
type vault struct {
	mu     sync.Mutex
	bodies map[string][]byte
	reply  func(subject string) (any, error)
}

func (v *vault) body(subject string) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.bodies[subject]
}

func serve(t *testing.T, nc *nats.Conn, v *vault) {
	t.Helper()
	v.bodies = map[string][]byte{}
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "vault", Version: "0.0.1", Prefix: prefix, Callers: apikey.NewSet().Add(apikey.Handshake, []string{apiKey})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	for _, subject := range []string{
		messages.SubjectVaultConnectionsCreate, messages.SubjectVaultConnectionsFail,
		messages.SubjectVaultExchange, messages.SubjectVaultStaticStore,
	} {
		err := natsx.Endpoint(svc, subject, func(_ context.Context, body json.RawMessage) (any, error) {
			v.mu.Lock()
			v.bodies[subject] = append([]byte(nil), body...)
			v.mu.Unlock()
			return v.reply(subject)
		}, natsx.For(apikey.Handshake))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func newClient(t *testing.T) (*Client, *nats.Conn) {
	t.Helper()
	nc := testkit.Conn(t, testkit.NATS(t))
	return &Client{NATS: &natsx.Client{NC: nc, Prefix: prefix, APIKey: apiKey}}, nc
}

// calls are the client's methods, each with the subject and body it must send.
var calls = []struct {
	name    string
	subject string
	body    any
	call    func(context.Context, *Client) (messages.Connection, error)
}{
	{
		name:    "create connection",
		subject: messages.SubjectVaultConnectionsCreate,
		body: messages.VaultCreateConnection{ConnectionID: "conn-1", ProviderID: "prov-1", WorkspaceID: "ws-1",
			Scopes: []string{"openid"}, Metadata: map[string]any{"k": "v"}},
		call: func(ctx context.Context, c *Client) (messages.Connection, error) {
			return c.CreateConnection(ctx, messages.VaultCreateConnection{ConnectionID: "conn-1", ProviderID: "prov-1", WorkspaceID: "ws-1",
				Scopes: []string{"openid"}, Metadata: map[string]any{"k": "v"}})
		},
	},
	{
		name:    "fail connection",
		subject: messages.SubjectVaultConnectionsFail,
		body:    messages.VaultFailConnection{ConnectionID: "conn-1", Reason: messages.Reason{Code: "access_denied", Message: "no"}},
		call: func(ctx context.Context, c *Client) (messages.Connection, error) {
			return messages.Connection{}, c.FailConnection(ctx, "conn-1", messages.Reason{Code: "access_denied", Message: "no"})
		},
	},
	{
		name:    "exchange",
		subject: messages.SubjectVaultExchange,
		body: messages.VaultExchange{ConnectionID: "conn-1", Code: "the-code", CodeVerifier: "verifier",
			RedirectURI: "https://hs.example.com/v1/callback", Nonce: "nonce"},
		call: func(ctx context.Context, c *Client) (messages.Connection, error) {
			return c.Exchange(ctx, messages.VaultExchange{ConnectionID: "conn-1", Code: "the-code", CodeVerifier: "verifier",
				RedirectURI: "https://hs.example.com/v1/callback", Nonce: "nonce"})
		},
	},
	{
		name:    "store static",
		subject: messages.SubjectVaultStaticStore,
		body:    messages.VaultStoreStatic{ConnectionID: "conn-1", Credentials: map[string]any{"api_key": "secret"}},
		call: func(ctx context.Context, c *Client) (messages.Connection, error) {
			return c.StoreStatic(ctx, messages.VaultStoreStatic{ConnectionID: "conn-1", Credentials: map[string]any{"api_key": "secret"}})
		},
	},
}

func TestClientSendsTypedBodies(t *testing.T) {
	c, nc := newClient(t)
	conn := messages.Connection{ConnectionID: "conn-1", ProviderID: "prov-1", WorkspaceID: "ws-1", Status: messages.StatusActive, Scopes: []string{"openid"}}
	v := &vault{reply: func(string) (any, error) { return conn, nil }}
	serve(t, nc, v)
	ctx := context.Background()
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.subject != messages.SubjectVaultConnectionsFail && !reflect.DeepEqual(got, conn) {
				t.Errorf("reply = %+v, want %+v", got, conn)
			}
			want, _ := json.Marshal(tt.body)
			if sent := v.body(tt.subject); string(sent) != string(want) {
				t.Errorf("%s body = %s, want %s", tt.subject, sent, want)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("error reply", func(t *testing.T) {
		c, nc := newClient(t)
		serve(t, nc, &vault{reply: func(string) (any, error) {
			return nil, messages.Errorf(messages.CodeProviderError, "invalid_grant")
		}})
		for _, tt := range calls {
			_, err := tt.call(ctx, c)
			var me *messages.Error
			if !errors.Is(err, messages.ErrProviderError) || !errors.As(err, &me) || me.Message != "invalid_grant" {
				t.Errorf("%s: err = %v, want provider_error: invalid_grant", tt.name, err)
			}
		}
	})
	t.Run("no vault", func(t *testing.T) {
		c, _ := newClient(t)
		for _, tt := range calls {
			if _, err := tt.call(ctx, c); !errors.Is(err, messages.ErrUnavailable) {
				t.Errorf("%s: err = %v, want unavailable", tt.name, err)
			}
		}
	})
	t.Run("vault too slow", func(t *testing.T) {
		c, nc := newClient(t)
		c.Timeout = 50 * time.Millisecond
		release := make(chan struct{})
		serve(t, nc, &vault{reply: func(string) (any, error) { <-release; return nil, nil }})
		// Cleanups run last-in first-out: this one, before serve's stops the
		// service and waits for the handler.
		t.Cleanup(func() { close(release) })
		if _, err := calls[0].call(ctx, c); !errors.Is(err, messages.ErrUnavailable) {
			t.Errorf("err = %v, want unavailable", err)
		}
	})
}
