package vault_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/nexus-broker/nexus/messages"
)

const staticProviderID = "static-test"

// apiKeySchema: one required api_key, anything else allowed.
const apiKeySchema = `{"type":"object","properties":{"api_key":{"type":"string","minLength":8},"note":{"type":"string"}},"required":["api_key"]}`

// staticClient is a static provider registration.
func staticClient(id, name string, st messages.Strategy, schema string, v *messages.Verification) messages.VaultClient {
	return messages.VaultClient{ProviderID: id, ProviderName: name, Type: messages.ProviderStatic, Strategy: &st,
		CredentialSchema: json.RawMessage(schema), Verification: v}
}

// apiKeyClient is the simplest static provider: an API key in a header.
func apiKeyClient(id, name string) messages.VaultClient {
	return staticClient(id, name, messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}}, apiKeySchema, nil)
}

func (e *env) createFor(provider, ws string) messages.Connection {
	e.t.Helper()
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: provider, WorkspaceID: ws}, &c)
	return c
}

func (e *env) storeStatic(id string, creds any) (messages.Connection, error) {
	var c messages.Connection
	err := e.call(messages.SubjectVaultStaticStore, map[string]any{"connection_id": id, "credentials": creds}, &c)
	return c, err
}

// connectStatic creates a connection of provider and stores creds.
func (e *env) connectStatic(provider string, creds map[string]any) messages.Connection {
	e.t.Helper()
	c := e.createFor(provider, workspace)
	got, err := e.storeStatic(c.ConnectionID, creds)
	if err != nil {
		e.t.Fatalf("store static: %v", err)
	}
	if got.Status != messages.StatusActive {
		e.t.Fatalf("status after store = %s", got.Status)
	}
	return got
}

// rawToken is tokens.get's reply as JSON, to check what is left out.
func (e *env) rawToken(id string) (map[string]any, error) {
	var m map[string]any
	err := e.call(messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, &m)
	return m, err
}

// verifier is a provider's verification endpoint on loopback: it answers
// 200 when check accepts the request, else 401.
type verifier struct {
	srv   *httptest.Server
	hits  atomic.Int32
	check atomic.Pointer[func(r *http.Request) bool]
}

func newVerifier(t *testing.T) *verifier {
	v := &verifier{}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		if f := v.check.Load(); f != nil && (*f)(r) {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"bad key"}`))
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *verifier) accept(f func(r *http.Request) bool) { v.check.Store(&f) }

func (v *verifier) verification(path string) *messages.Verification {
	return &messages.Verification{URL: v.srv.URL + path}
}

// sigV4Valid re-signs the request's signed headers with the expected
// secret and compares the Authorization headers.
func sigV4Valid(r *http.Request, akid, secret, token, service, region string) bool {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+akid+"/") || !strings.Contains(auth, "/"+region+"/"+service+"/aws4_request") {
		return false
	}
	if r.Header.Get("X-Amz-Security-Token") != token {
		return false
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			re.Header.Set(h, r.Header.Get(h))
		}
	}
	re.Header.Del("X-Amz-Security-Token") // the signer adds it from the credentials
	re.Header.Del("X-Amz-Date")
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		sum := sha256.Sum256(nil)
		payload = hex.EncodeToString(sum[:])
	}
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token},
		re, payload, service, region, at)
	return err == nil && re.Header.Get("Authorization") == auth
}

// TestStaticStrategies: for each strategy, the verification request gets
// the credential applied as the Gateway would apply it, and tokens.get (slow
// path, then cached) returns exactly the fields the strategy uses and the
// strategy itself, never the other properties the user supplied.
func TestStaticStrategies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	v := newVerifier(t)
	mac := func(secret string, sha512ing bool) []byte {
		h := hmac.New(sha256.New, []byte(secret))
		if sha512ing {
			h = hmac.New(sha512.New, []byte(secret))
		}
		return h.Sum(nil)
	}
	awsSchema := `{"type":"object","properties":{"access_key_id":{"type":"string"},"secret_access_key":{"type":"string"},"session_token":{"type":"string"},"note":{"type":"string"}},"required":["access_key_id","secret_access_key"]}`
	tests := []struct {
		name   string
		st     messages.Strategy
		schema string
		creds  map[string]any
		check  func(r *http.Request) bool
		want   map[string]any
	}{
		{
			name:   "header with prefix",
			st:     messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "Authorization", "prefix": "Bearer ", "field": "token"}},
			schema: `{"type":"object","properties":{"token":{"type":"string"},"note":{"type":"string"}},"required":["token"]}`,
			creds:  map[string]any{"token": "tok-header-secret-1", "note": "extra-sealed-value-1"},
			check:  func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-header-secret-1" },
			want:   map[string]any{"token": "tok-header-secret-1"},
		},
		{
			name:   "query_param",
			st:     messages.Strategy{Type: messages.StrategyQueryParam, Config: map[string]any{"param": "key"}},
			schema: apiKeySchema,
			creds:  map[string]any{"api_key": "qp-secret-value-2", "note": "extra-sealed-value-2"},
			check: func(r *http.Request) bool {
				return r.URL.Query().Get("key") == "qp-secret-value-2" && r.URL.Query().Get("keep") == "1"
			},
			want: map[string]any{"api_key": "qp-secret-value-2"},
		},
		{
			name:   "basic_auth",
			st:     messages.Strategy{Type: messages.StrategyBasicAuth, Config: map[string]any{"username_field": "user"}},
			schema: `{"type":"object","properties":{"user":{"type":"string"},"password":{"type":"string"},"note":{"type":"string"}},"required":["user","password"]}`,
			creds:  map[string]any{"user": "alice", "password": "basic-secret-value-3", "note": "extra-sealed-value-3"},
			check: func(r *http.Request) bool {
				u, p, ok := r.BasicAuth()
				return ok && u == "alice" && p == "basic-secret-value-3"
			},
			want: map[string]any{"user": "alice", "password": "basic-secret-value-3"},
		},
		{
			name:   "aws_sigv4 with session token",
			st:     messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}},
			schema: awsSchema,
			creds:  map[string]any{"access_key_id": "AKIDEXAMPLE4", "secret_access_key": "aws-secret-value-4", "session_token": "aws-session-value-4", "note": "extra-sealed-value-4"},
			check: func(r *http.Request) bool {
				return sigV4Valid(r, "AKIDEXAMPLE4", "aws-secret-value-4", "aws-session-value-4", "s3", "eu-west-1")
			},
			want: map[string]any{"access_key_id": "AKIDEXAMPLE4", "secret_access_key": "aws-secret-value-4", "session_token": "aws-session-value-4"},
		},
		{
			name:   "aws_sigv4 without session token",
			st:     messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "execute-api", "region": "us-east-2"}},
			schema: awsSchema,
			creds:  map[string]any{"access_key_id": "AKIDEXAMPLE5", "secret_access_key": "aws-secret-value-5", "note": "extra-sealed-value-5"},
			check: func(r *http.Request) bool {
				return sigV4Valid(r, "AKIDEXAMPLE5", "aws-secret-value-5", "", "execute-api", "us-east-2")
			},
			want: map[string]any{"access_key_id": "AKIDEXAMPLE5", "secret_access_key": "aws-secret-value-5"},
		},
		{
			name:   "hmac_payload sha256 hex with prefix",
			st:     messages.Strategy{Type: messages.StrategyHMACPayload, Config: map[string]any{"header": "X-Signature", "algorithm": "sha256", "prefix": "sha256="}},
			schema: `{"type":"object","properties":{"secret":{"type":"string"},"note":{"type":"string"}},"required":["secret"]}`,
			creds:  map[string]any{"secret": "hmac-secret-value-6", "note": "extra-sealed-value-6"},
			check: func(r *http.Request) bool {
				return r.Header.Get("X-Signature") == "sha256="+hex.EncodeToString(mac("hmac-secret-value-6", false))
			},
			want: map[string]any{"secret": "hmac-secret-value-6"},
		},
		{
			name:   "hmac_payload sha512 base64",
			st:     messages.Strategy{Type: messages.StrategyHMACPayload, Config: map[string]any{"header": "X-Sig", "algorithm": "sha512", "encoding": "base64", "field": "key"}},
			schema: `{"type":"object","properties":{"key":{"type":"string"},"note":{"type":"string"}},"required":["key"]}`,
			creds:  map[string]any{"key": "hmac-secret-value-7", "note": "extra-sealed-value-7"},
			check: func(r *http.Request) bool {
				return r.Header.Get("X-Sig") == base64.StdEncoding.EncodeToString(mac("hmac-secret-value-7", true))
			},
			want: map[string]any{"key": "hmac-secret-value-7"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := staticProviderID + "-" + string(rune('a'+i))
			v.accept(tt.check)
			e.putClient(staticClient(id, tt.name, tt.st, tt.schema, v.verification("/check?keep=1")))
			before := v.hits.Load()
			c := e.connectStatic(id, tt.creds)
			if v.hits.Load() != before+1 {
				t.Fatalf("verification requests: %d", v.hits.Load()-before)
			}
			for range 3 { // the database, then the cache
				got, err := e.token(c.ConnectionID, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got.AuthType != messages.AuthStatic || got.Provider != tt.name || got.ConnectionID != c.ConnectionID ||
					got.AccessToken != "" || got.ExpiresAt != nil || got.TokenType != "" || got.Scopes == nil || len(got.Scopes) != 0 {
					t.Fatalf("credential = %+v", got)
				}
				if !reflect.DeepEqual(got.Credentials, tt.want) {
					t.Fatalf("credentials = %v, want %v", got.Credentials, tt.want)
				}
				if got.Strategy.Type != tt.st.Type || !reflect.DeepEqual(got.Strategy.Config, tt.st.Config) {
					t.Fatalf("strategy = %+v, want %+v", got.Strategy, tt.st)
				}
			}
			m, err := e.rawToken(c.ConnectionID)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"access_token", "expires_at", "refresh_token"} {
				if _, ok := m[k]; ok {
					t.Fatalf("reply has %s: %v", k, m)
				}
			}
			if strings.Contains(mustJSON(t, m["credentials"]), tt.creds["note"].(string)) {
				t.Fatal("an extra property the user supplied was returned with the credentials")
			}
			if got := e.get(c.ConnectionID); got.ExpiresAt != nil || got.LastRefreshedAt != nil {
				t.Fatalf("connection = %+v", got)
			}
		})
	}
}

func TestStaticInvalidRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putClient(staticClient(staticProviderID, "keys",
		messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
		`{"type":"object","properties":{"api_key":{"type":["string","number"],"minLength":8,"pattern":"^k"},"count":{"type":"integer"},"kind":{"enum":["a","b"]}},
		  "required":["api_key"],"additionalProperties":false}`, nil))
	p := e.createFor(staticProviderID, workspace)
	const secretValue = "not-k-secret-value"
	tests := []struct {
		name   string
		creds  any
		inMsg  string
		secret string
	}{
		{"missing field", map[string]any{"count": 3}, "credentials.api_key is required", ""},
		{"too short", map[string]any{"api_key": "k-short"}, "credentials.api_key must have at least 8 characters", "k-short"},
		{"pattern", map[string]any{"api_key": secretValue}, "credentials.api_key does not satisfy the provider's schema (pattern)", secretValue},
		{"wrong type", map[string]any{"api_key": "k-long-enough", "count": "three-secret"}, "credentials.count must be of type integer", "three-secret"},
		{"enum", map[string]any{"api_key": "k-long-enough", "kind": "c-secret"}, "credentials.kind does not satisfy the provider's schema (enum)", "c-secret"},
		{"unknown property", map[string]any{"api_key": "k-long-enough", "other": "o-secret"}, "does not allow: other", "o-secret"},
		{"a number where the strategy needs text", map[string]any{"api_key": 123456789012}, "credentials.api_key must be a string", "123456789012"},
		{"not an object", []string{"k-long-enough"}, "credentials must be a JSON object", "k-long-enough"},
		{"a string", "k-long-enough", "credentials must be a JSON object", "k-long-enough"},
		{"null", nil, "credentials is required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.storeStatic(p.ConnectionID, tt.creds)
			wantCode(t, err, messages.ErrInvalidRequest)
			if !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("message %q does not say %q", err, tt.inMsg)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("message %q echoes the value", err)
			}
		})
	}
	if got := e.get(p.ConnectionID); got.Status != messages.StatusPending {
		t.Fatalf("status after refused credentials = %s", got.Status)
	}
	if got := eventTypes(e.events(p.ConnectionID)); !slices.Equal(got, []string{"created"}) {
		t.Fatalf("events = %v", got)
	}
	// Numbers are fine in fields the strategy does not use, and kept exact.
	if _, err := e.storeStatic(p.ConnectionID, json.RawMessage(`{"api_key":"k-long-enough","count":12345678901234567890}`)); err != nil {
		t.Fatal(err)
	}
	cr, err := e.token(p.ConnectionID, nil)
	if err != nil || !reflect.DeepEqual(cr.Credentials, map[string]any{"api_key": "k-long-enough"}) {
		t.Fatalf("token = %+v, %v", cr.Credentials, err)
	}

	// Malformed bodies, unknown connections, the wrong kind of connection.
	for _, body := range []string{"", "{", `{"connection_id":5}`, `{"connection_id":"x","credentials":{}} {}`, `{"connection_id":"x","credentials":{},"extra":1}`} {
		wantCode(t, raw(t, e, messages.SubjectVaultStaticStore, []byte(body), handshakeKey), messages.ErrInvalidRequest)
	}
	wantCode(t, raw(t, e, messages.SubjectVaultStaticStore, []byte(`{}`), ""), messages.ErrUnauthorized)
	wantCode(t, raw(t, e, messages.SubjectVaultStaticStore, []byte(`{"connection_id":"`+p.ConnectionID+`","credentials":{"api_key":"k`+strings.Repeat("x", 20<<10)+`"}}`), handshakeKey), messages.ErrInvalidRequest)
	_, err = e.storeStatic("", map[string]any{"api_key": "k-long-enough"})
	wantCode(t, err, messages.ErrInvalidRequest)
	for _, id := range []string{"nope", "0190b5c4-0000-7000-8000-000000000000"} {
		_, err := e.storeStatic(id, map[string]any{"api_key": "k-long-enough"})
		wantCode(t, err, messages.ErrNotFound)
	}
	oauth := e.create(workspace)
	_, err = e.storeStatic(oauth.ConnectionID, map[string]any{"api_key": "k-long-enough"})
	wantCode(t, err, messages.ErrInvalidRequest)
	if got := e.get(oauth.ConnectionID); got.Status != messages.StatusPending {
		t.Fatalf("oauth connection = %s", got.Status)
	}
	// The other way round: a static connection has no authorization code.
	s := e.createFor(staticProviderID, workspace)
	_, err = e.exchange(s.ConnectionID, authorization{code: "c", verifier: "v", nonce: "n"})
	wantCode(t, err, messages.ErrInvalidRequest)
	// Failed and revoked connections take no credentials.
	var failed, revoked messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: s.ConnectionID}, &failed)
	_, err = e.storeStatic(s.ConnectionID, map[string]any{"api_key": "k-long-enough"})
	wantCode(t, err, messages.ErrNotActive)
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: p.ConnectionID}, &revoked)
	_, err = e.storeStatic(p.ConnectionID, map[string]any{"api_key": "k-long-enough"})
	wantCode(t, err, messages.ErrNotActive)
}

func TestStaticClientValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	good := apiKeyClient("s1", "s1")
	good.Verification = &messages.Verification{URL: "https://api.example.com/me", Method: "POST", ExpectStatus: 204}
	e.putClient(good)
	bad := func(mut func(c *messages.VaultClient)) messages.VaultClient {
		c := good
		st := *good.Strategy
		c.Strategy = &st
		v := *good.Verification
		c.Verification = &v
		mut(&c)
		return c
	}
	for name, c := range map[string]messages.VaultClient{
		"no strategy":          bad(func(c *messages.VaultClient) { c.Strategy = nil }),
		"oauth2 strategy":      bad(func(c *messages.VaultClient) { c.Strategy.Type = messages.StrategyOAuth2 }),
		"invalid strategy":     bad(func(c *messages.VaultClient) { c.Strategy.Config = map[string]any{"param": "x"} }),
		"no schema":            bad(func(c *messages.VaultClient) { c.CredentialSchema = nil }),
		"schema not JSON":      bad(func(c *messages.VaultClient) { c.CredentialSchema = json.RawMessage(`"x"`) }),
		"schema not compiling": bad(func(c *messages.VaultClient) { c.CredentialSchema = json.RawMessage(`{"type":5}`) }),
		"external reference":   bad(func(c *messages.VaultClient) { c.CredentialSchema = json.RawMessage(`{"$ref":"file:///etc/passwd"}`) }),
		"client secret":        bad(func(c *messages.VaultClient) { c.ClientSecret = "s3cret-value" }),
		"refused verification": bad(func(c *messages.VaultClient) { c.Verification.URL = "http://127.0.0.2/me" }),
		"no verification url":  bad(func(c *messages.VaultClient) { c.Verification.URL = "" }),
		"verification method":  bad(func(c *messages.VaultClient) { c.Verification.Method = "DELETE" }),
		"expect status":        bad(func(c *messages.VaultClient) { c.Verification.ExpectStatus = 700 }),
		"oauth with schema": bad(func(c *messages.VaultClient) {
			*c = messages.VaultClient{ProviderID: "o", ProviderName: "o", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://a.example.com/token",
				CredentialSchema: json.RawMessage(apiKeySchema)}
		}),
		"oauth with verification": bad(func(c *messages.VaultClient) {
			*c = messages.VaultClient{ProviderID: "o", ProviderName: "o", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://a.example.com/token",
				Verification: &messages.Verification{URL: "https://a.example.com/me"}}
		}),
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, e.call(messages.SubjectVaultClientsPut, c, nil), messages.ErrInvalidRequest)
		})
	}
}

func TestStaticVerificationFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	v := newVerifier(t)
	v.accept(func(r *http.Request) bool { return r.Header.Get("X-Api-Key") == "good-key-value" })
	var status atomic.Int32 // when set, the endpoint answers it whatever the key
	status503 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Location", v.srv.URL+"/me") // would accept the key: never followed
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(status503.Close)
	e.putClient(staticClient(staticProviderID, "keys", messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
		apiKeySchema, v.verification("/me")))

	// Refused by the provider: the consent stays pending, nothing is stored
	// and no event written, so the person can correct what they typed.
	p := e.createFor(staticProviderID, workspace)
	_, err := e.storeStatic(p.ConnectionID, map[string]any{"api_key": "wrong-key-value"})
	wantCode(t, err, messages.ErrProviderError)
	if strings.Contains(err.Error(), "wrong-key-value") || strings.Contains(err.Error(), "bad key") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("message: %v", err)
	}
	got := e.get(p.ConnectionID)
	if got.Status != messages.StatusPending || got.Failure != nil {
		t.Fatalf("after a refusal: %+v", got)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "select count(*) from vault.connections where id = $1 and static_credentials is null", p.ConnectionID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("refused credentials were stored: %s", e.rawRow(p.ConnectionID))
	}
	// The corrected key completes the same consent.
	if got, err := e.storeStatic(p.ConnectionID, map[string]any{"api_key": "good-key-value"}); err != nil || got.Status != messages.StatusActive {
		t.Fatalf("second attempt: %+v, %v", got, err)
	}
	if types := eventTypes(e.events(p.ConnectionID)); !slices.Equal(types, []string{"created", "active"}) {
		t.Fatalf("events = %v", types)
	}

	// A re-consent refused by the provider leaves the working connection as it was.
	a := e.connectStatic(staticProviderID, map[string]any{"api_key": "good-key-value"})
	_, err = e.storeStatic(a.ConnectionID, map[string]any{"api_key": "wrong-key-value"})
	wantCode(t, err, messages.ErrProviderError)
	if cr, err := e.token(a.ConnectionID, nil); err != nil || cr.Credentials["api_key"] != "good-key-value" {
		t.Fatalf("after a refused re-consent: %+v, %v", cr.Credentials, err)
	}

	// No answer, 5xx, 429: unavailable; a redirect is not followed and is a
	// refusal. Each leaves the connection pending.
	for _, tc := range []struct {
		name   string
		url    string
		status int
		want   *messages.Error
		after  messages.ConnectionStatus
	}{
		{"503", status503.URL, 503, messages.ErrUnavailable, messages.StatusPending},
		{"429", status503.URL, 429, messages.ErrUnavailable, messages.StatusPending},
		{"no answer", "http://127.0.0.1:1/me", 0, messages.ErrUnavailable, messages.StatusPending},
		{"redirect", status503.URL, 302, messages.ErrProviderError, messages.StatusPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits := v.hits.Load()
			defer func() {
				if v.hits.Load() != hits {
					t.Error("a redirect was followed")
				}
			}()
			status.Store(int32(tc.status))
			e.putClient(staticClient(staticProviderID+tc.name, tc.name, messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
				apiKeySchema, &messages.Verification{URL: tc.url}))
			c := e.createFor(staticProviderID+tc.name, workspace)
			_, err := e.storeStatic(c.ConnectionID, map[string]any{"api_key": "good-key-value"})
			wantCode(t, err, tc.want)
			if got := e.get(c.ConnectionID); got.Status != tc.after {
				t.Fatalf("status = %s, want %s", got.Status, tc.after)
			}
		})
	}
	// An operator-chosen expect_status.
	status.Store(204)
	e.putClient(staticClient("s204", "s204", messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
		apiKeySchema, &messages.Verification{URL: status503.URL, Method: "HEAD", ExpectStatus: 204}))
	e.connectStatic("s204", map[string]any{"api_key": "good-key-value"})
}

// TestStaticProviderChanges: renaming, a schema update and a strategy
// change after connections were made; a re-consent replaces credentials.
func TestStaticProviderChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	header := messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}}
	e.putClient(staticClient(staticProviderID, "keys", header, apiKeySchema, nil))
	c := e.connectStatic(staticProviderID, map[string]any{"api_key": "first-key-value", "note": "n"})

	// Rename, and a schema that now requires more: the connection is served
	// as before, and the row shows it was validated against another schema.
	e.putClient(staticClient(staticProviderID, "keys-renamed", header,
		`{"type":"object","properties":{"api_key":{"type":"string"},"account":{"type":"string"}},"required":["api_key","account"],"additionalProperties":false}`, nil))
	cr, err := e.token(c.ConnectionID, nil)
	if err != nil || cr.Provider != "keys-renamed" || cr.Credentials["api_key"] != "first-key-value" {
		t.Fatalf("after a schema update: %+v, %v", cr, err)
	}
	var current bool
	if err := e.pool.QueryRow(context.Background(), `select c.credential_schema_hash = encode(sha256(convert_to(p.credential_schema::text, 'UTF8')), 'hex')
		from vault.connections c join vault.provider_clients p using (provider_id) where c.id = $1`, c.ConnectionID).Scan(&current); err != nil || current {
		t.Fatalf("schema hash still current after an update (%v)", err)
	}

	// Re-consent replaces the credentials (under the current schema).
	_, err = e.storeStatic(c.ConnectionID, map[string]any{"api_key": "second-key-value"})
	wantCode(t, err, messages.ErrInvalidRequest) // account is now required
	if _, err := e.storeStatic(c.ConnectionID, map[string]any{"api_key": "second-key-value", "account": "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(context.Background(), `select c.credential_schema_hash = encode(sha256(convert_to(p.credential_schema::text, 'UTF8')), 'hex')
		from vault.connections c join vault.provider_clients p using (provider_id) where c.id = $1`, c.ConnectionID).Scan(&current); err != nil || !current {
		t.Fatalf("schema hash not the current one after a re-consent (%v)", err)
	}
	cr, err = e.token(c.ConnectionID, nil)
	if err != nil || !reflect.DeepEqual(cr.Credentials, map[string]any{"api_key": "second-key-value"}) {
		t.Fatalf("after re-consent: %+v, %v", cr.Credentials, err)
	}

	// A strategy that now needs a field the stored credentials lack: the
	// user must connect again.
	needsSecret := messages.Strategy{Type: messages.StrategyBasicAuth, Config: map[string]any{"username_field": "account", "password_field": "secret"}}
	schema := `{"type":"object","properties":{"account":{"type":"string"},"secret":{"type":"string"}},"required":["account","secret"]}`
	e.putClient(staticClient(staticProviderID, "keys-renamed", needsSecret, schema, nil))
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err = e.token(c.ConnectionID, nil)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // a replica's cache lives under a second
	}
	wantCode(t, err, messages.ErrAttentionRequired)
	if !strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "second-key-value") {
		t.Fatalf("message: %v", err)
	}
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusAttentionRequired || got.Attention == nil || got.Attention.Code != "credentials_incomplete" {
		t.Fatalf("connection = %+v", got)
	}
	wantCode(t, e.call(messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil), messages.ErrAttentionRequired)

	// Re-consent with what the strategy needs: recovered.
	if got, err := e.storeStatic(c.ConnectionID, map[string]any{"account": "acme", "secret": "third-secret-value"}); err != nil || got.Status != messages.StatusActive || got.Attention != nil {
		t.Fatalf("re-consent: %+v, %v", got, err)
	}
	cr, err = e.token(c.ConnectionID, nil)
	if err != nil || !reflect.DeepEqual(cr.Credentials, map[string]any{"account": "acme", "secret": "third-secret-value"}) || cr.Strategy.Type != messages.StrategyBasicAuth {
		t.Fatalf("after recovery: %+v, %v", cr, err)
	}
	if types := eventTypes(e.events(c.ConnectionID)); !slices.Equal(types, []string{"created", "active", "active", "attention_required", "recovered"}) {
		t.Fatalf("events = %v", types)
	}
}

// TestStaticLifecycle: tokens.refresh is refused, the refresher never
// claims a static connection, and revocation wipes the credentials.
func TestStaticLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	e.start(e.key) // a second replica: its cache must drop the credentials too
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	c := e.connectStatic(staticProviderID, map[string]any{"api_key": "lifecycle-key-value"})
	for range 10 {
		if _, err := e.token(c.ConnectionID, intp(3600)); err != nil {
			t.Fatal(err)
		}
	}
	var cr messages.Credential
	err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cr)
	wantCode(t, err, messages.ErrInvalidRequest)
	if !strings.Contains(err.Error(), "static credentials do not expire") {
		t.Fatalf("message: %v", err)
	}
	var claim messages.RefreshClaimReply
	e.mustCall(messages.SubjectVaultRefreshClaim, messages.RefreshClaim{Owner: "t", Limit: 100, LeaseSeconds: 30}, &claim)
	if len(claim.Items) != 0 {
		t.Fatalf("claimed %+v", claim.Items)
	}
	var run messages.RefreshRunReply
	e.mustCall(messages.SubjectVaultRefreshRun, messages.RefreshRun{ConnectionID: c.ConnectionID, TokenVersion: 1}, &run)
	if run.Outcome != messages.RefreshNotNeeded {
		t.Fatalf("run = %+v", run)
	}

	var revoked messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &revoked)
	if revoked.Status != messages.StatusRevoked {
		t.Fatalf("revoked = %+v", revoked)
	}
	deadline := time.Now().Add(time.Second) // the other replica hears the broadcast at once; its cache lives under a second anyway
	for range 20 {
		_, err := e.token(c.ConnectionID, nil)
		if err == nil {
			if time.Now().After(deadline) {
				t.Fatal("revoked connection still served after one second")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		wantCode(t, err, messages.ErrNotActive)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "select count(*) from vault.connections where id = $1 and static_credentials is null and credential_schema_hash is null", c.ConnectionID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("static credentials not wiped: %s", e.rawRow(c.ConnectionID))
	}
	if types := eventTypes(e.events(c.ConnectionID)); !slices.Equal(types, []string{"created", "active", "revoked"}) {
		t.Fatalf("events = %v", types)
	}
}

// TestStaticCredentialsNeverInPlaintext scans every row of every vault
// table for the secrets, as text and as hex (bytea).
func TestStaticCredentialsNeverInPlaintext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	v := newVerifier(t)
	v.accept(func(r *http.Request) bool { return true })
	e.putClient(staticClient(staticProviderID, "aws", messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}},
		`{"type":"object","properties":{"access_key_id":{"type":"string"},"secret_access_key":{"type":"string"},"session_token":{"type":"string"},"note":{"type":"string","writeOnly":true}},"required":["access_key_id","secret_access_key"]}`,
		v.verification("/")))
	secrets := []string{"plain-secret-access-key-1", "plain-session-token-1", "plain-note-1", "plain-secret-access-key-2"}
	c := e.connectStatic(staticProviderID, map[string]any{"access_key_id": "AKIDPLAIN", "secret_access_key": secrets[0], "session_token": secrets[1], "note": secrets[2]})
	if _, err := e.storeStatic(c.ConnectionID, map[string]any{"access_key_id": "AKIDPLAIN", "secret_access_key": secrets[3]}); err != nil {
		t.Fatal(err)
	}
	failed := e.createFor(staticProviderID, workspace)
	v.accept(func(r *http.Request) bool { return false })
	_, err := e.storeStatic(failed.ConnectionID, map[string]any{"access_key_id": "AKIDPLAIN", "secret_access_key": "plain-refused-secret"})
	wantCode(t, err, messages.ErrProviderError)
	secrets = append(secrets, "plain-refused-secret")

	rows, err := e.pool.Query(context.Background(), "select table_name from information_schema.tables where table_schema = 'vault'")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if !slices.Contains(tables, "connections") || !slices.Contains(tables, "outbox") {
		t.Fatalf("tables = %v", tables)
	}
	for _, table := range tables {
		var dump string
		if err := e.pool.QueryRow(context.Background(), `select coalesce(string_agg(to_jsonb(t)::text, E'\n'), '') from vault."`+table+`" t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(dump, s) || strings.Contains(dump, hex.EncodeToString([]byte(s))) {
				t.Fatalf("table vault.%s holds %q in plaintext", table, s)
			}
		}
	}
}

// TestStaticConfig: the fields of a static credential that its strategy
// does not apply and that are not secret become the connection's config,
// in connections.get and in tokens.get's Credential; secret ones never do,
// and a re-consent merges what it brings.
func TestStaticConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	schema := `{"type":"object","required":["api_key","subdomain"],"properties":{
		"api_key":{"type":"string","writeOnly":true},
		"subdomain":{"type":"string"},
		"account_id":{"type":"integer"},
		"sandbox":{"type":"boolean"},
		"webhook_secret":{"type":"string"},
		"pin":{"type":"string","format":"password"},
		"public_key":{"type":"string","writeOnly":false},
		"hidden":{"type":"string","writeOnly":true}}}`
	e.putClient(staticClient(staticProviderID, "zendesk", messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}}, schema, nil))
	c := e.connectStatic(staticProviderID, map[string]any{"api_key": "sk-config-0123", "subdomain": "acme", "account_id": 42, "sandbox": true,
		"webhook_secret": "whsec-1", "pin": "1234", "public_key": "pk-1", "hidden": "h-1", "undeclared": "u-1"})
	want := map[string]string{"subdomain": "acme", "account_id": "42", "sandbox": "true", "public_key": "pk-1"}
	if got := e.get(c.ConnectionID); !reflect.DeepEqual(got.Config, want) {
		t.Fatalf("connections.get config = %v, want %v", got.Config, want)
	}
	cred, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cred.Config, want) || !reflect.DeepEqual(cred.Credentials, map[string]any{"api_key": "sk-config-0123"}) {
		t.Fatalf("tokens.get: config %v, credentials %v", cred.Config, cred.Credentials)
	}
	var plain string
	if err := e.pool.QueryRow(context.Background(), "select config::text from vault.connections where id = $1", c.ConnectionID).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sk-config-0123", "whsec-1", "1234", "h-1", "u-1"} {
		if strings.Contains(plain, s) {
			t.Fatalf("config column holds a secret or an undeclared field: %s", plain)
		}
	}

	// A re-consent: what it brings replaces, what it leaves out stays.
	if _, err := e.storeStatic(c.ConnectionID, map[string]any{"api_key": "sk-config-4567", "subdomain": "acme-eu"}); err != nil {
		t.Fatal(err)
	}
	want["subdomain"] = "acme-eu"
	if cred, err := e.token(c.ConnectionID, nil); err != nil || !reflect.DeepEqual(cred.Config, want) || cred.Credentials["api_key"] != "sk-config-4567" {
		t.Fatalf("after a re-consent: %+v, %v", cred, err)
	}
}

// TestConnectionFailureShown: connections.get says why a failed connection
// ended, and since when; a consent's expires_at must lie ahead, within the
// longest a link lives.
func TestConnectionFailureShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	c := e.createFor(staticProviderID, workspace)
	if got := e.get(c.ConnectionID); got.Failure != nil {
		t.Fatalf("a pending connection has a failure: %+v", got.Failure)
	}
	reason := messages.Reason{Code: "access_denied", Message: "The person refused the consent."}
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: c.ConnectionID, Reason: reason}, nil)
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusFailed || got.Failure == nil || got.Failure.Code != reason.Code || got.Failure.Message != reason.Message ||
		!got.Failure.Since.Equal(got.UpdatedAt) {
		t.Fatalf("failed connection: %s %+v", got.Status, got.Failure)
	}
	for _, at := range []time.Time{time.Now().Add(-time.Second), time.Now().Add(3 * time.Hour)} {
		err := e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: staticProviderID, WorkspaceID: workspace, ExpiresAt: &at}, nil)
		wantCode(t, err, messages.ErrInvalidRequest)
	}
}

// TestStaticConfigWaitsForConfirmation: the config a consent begun with
// require_confirmation brings takes effect with its credentials.
func TestStaticConfigWaitsForConfirmation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	c := e.createFor(staticProviderID, workspace)
	const value = "static-confirmation-0123456789"
	var got messages.Connection
	if err := e.call(messages.SubjectVaultStaticStore, map[string]any{"connection_id": c.ConnectionID,
		"credentials": map[string]any{"api_key": "sk-staged-0123", "note": "staged"},
		"confirm":     confirmation(value, time.Now().Add(time.Minute))}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != messages.StatusPending || got.Config != nil {
		t.Fatalf("before confirmation: %s %v", got.Status, got.Config)
	}
	if got, err := e.confirm(c.ConnectionID, workspace, value); err != nil || got.Status != messages.StatusActive || got.Config["note"] != "staged" {
		t.Fatalf("confirmed: %+v, %v", got, err)
	}
}
