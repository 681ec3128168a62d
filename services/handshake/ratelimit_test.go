package handshake_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/redisx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// otherKey is a second Gateway key, counted apart from apiKey.
const otherKey = "test-other-gateway-key-0123"

// limitedEnv is a handshake whose begin takes 5 a minute per key and 3 per
// workspace, with its clock 15 seconds into a minute.
func limitedEnv(t *testing.T) (*env, *natsx.Client) {
	t.Helper()
	e := newEnv(t, map[string]string{
		"API_KEY":                  apiKey + "," + otherKey,
		"BEGIN_RATE_PER_KEY":       "5/m",
		"BEGIN_RATE_PER_WORKSPACE": "3/m",
	})
	e.clock.mu.Lock()
	e.clock.t = time.Now().UTC().Truncate(time.Minute).Add(15 * time.Second)
	e.clock.mu.Unlock()
	return e, &natsx.Client{NC: e.nc, APIKey: otherKey}
}

func beginAs(t *testing.T, c *natsx.Client, provider, workspace string) (messages.BeginReply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep messages.BeginReply
	err := c.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{Provider: provider, WorkspaceID: workspace, ReturnURL: returnURL}, &rep)
	return rep, err
}

// wantLimited checks err is rate_limited with a retry hint of seconds,
// naming scope.
func wantLimited(t *testing.T, err error, seconds int, scope string) {
	t.Helper()
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeRateLimited || me.RetryAfterSeconds != seconds || !strings.Contains(me.Message, "this "+scope) {
		t.Fatalf("error = %#v, want rate_limited for this %s, retry after %ds", err, scope, seconds)
	}
}

// flows counts the flows stored in Redis for this handshake.
func (e *env) flows() int {
	e.t.Helper()
	rdb, err := redisx.Connect(context.Background(), e.cfg.RedisURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), e.cfg.RedisKeyPrefix+"flow:*").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(keys)
}

// TestBeginRateLimits: the fourth begin of a minute for one workspace is
// refused with a retry hint and creates nothing; other workspaces and other
// keys go on until their own limits; consents begun before the limit
// complete after it, through the callback and the hosted form; the next
// window begins again; refusals are counted by scope.
func TestBeginRateLimits(t *testing.T) {
	e, other := limitedEnv(t)
	first := e.mustBegin("oidc")
	formBrowser := e.browser()
	_, form := e.openForm(formBrowser, "db")
	e.mustBegin("plain") // the workspace's third

	gets, creates, _ := e.fakes.counts()
	flows := e.flows()
	_, err := e.begin(messages.BeginRequest{Provider: "oidc", WorkspaceID: "ws-1", ReturnURL: returnURL})
	wantLimited(t, err, 45, "workspace")
	if g, c, _ := e.fakes.counts(); g != gets || c != creates || e.flows() != flows {
		t.Fatalf("a refused begin reached admin (%d -> %d) or the vault (%d -> %d), or stored a flow (%d -> %d)", gets, g, creates, c, flows, e.flows())
	}
	// The refusal travels in the NATS micro error headers too.
	msg := nats.NewMsg(messages.Subject(messages.DefaultPrefix, messages.SubjectHandshakeBegin))
	msg.Header.Set(messages.HeaderAPIKey, apiKey)
	msg.Data = []byte(`{"provider":"oidc","workspace_id":"ws-1","return_url":"` + returnURL + `"}`)
	resp, err := e.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get(messages.HeaderErrorCode) != "429" || !strings.Contains(resp.Header.Get(messages.HeaderError), "retry after 45s") {
		t.Fatalf("error headers = %v", resp.Header)
	}

	// Another workspace, by the same key, and the same workspace by another key.
	if _, err := beginAs(t, e.client, "oidc", "ws-2"); err != nil {
		t.Fatalf("another workspace: %v", err)
	}
	_, err = beginAs(t, other, "oidc", "ws-1")
	wantLimited(t, err, 45, "workspace")
	if _, err := beginAs(t, other, "oidc", "ws-3"); err != nil {
		t.Fatalf("another key, another workspace: %v", err)
	}
	// The key's fifth begin goes through, its sixth does not, in any workspace.
	if _, err := beginAs(t, e.client, "oidc", "ws-4"); err != nil {
		t.Fatal(err)
	}
	_, err = beginAs(t, e.client, "oidc", "ws-5")
	wantLimited(t, err, 45, "key")
	if _, err := beginAs(t, other, "oidc", "ws-5"); err != nil {
		t.Fatalf("another key: %v", err)
	}

	// Begun before the limit, finished after it: the OAuth callback ...
	b := e.browser()
	loc := e.connect(b, first.AuthURL)
	cb, body := e.callback(b, url.Values{"code": {"the-code"}, "state": {loc.Query().Get("state")}})
	if want := returnURL + "?connection_id=" + first.ConnectionID + "&status=active"; cb.StatusCode != http.StatusSeeOther || cb.Header.Get("Location") != want {
		t.Fatalf("callback after the limit: HTTP %d, to %q: %s", cb.StatusCode, cb.Header.Get("Location"), body)
	}
	// ... and the hosted form.
	post, body := e.post(formBrowser, form.Action, form.Token, url.Values{"username": {"alice"}, "password": {"pw-1"}, "port": {"5432"}}, nil)
	if post.StatusCode != http.StatusSeeOther || !strings.Contains(post.Header.Get("Location"), "status=active") {
		t.Fatalf("form after the limit: HTTP %d, to %q: %s", post.StatusCode, post.Header.Get("Location"), body)
	}

	// The next minute begins again.
	e.clock.Advance(44 * time.Second)
	_, err = beginAs(t, other, "oidc", "ws-1")
	wantLimited(t, err, 1, "workspace")
	e.clock.Advance(time.Second)
	e.mustBegin("oidc")

	_, metrics := get(t, http.DefaultClient, e.internal+"/metrics")
	for _, want := range []string{
		`nexus_rate_limited_total{endpoint="handshake.begin",scope="workspace"} 4`,
		`nexus_rate_limited_total{endpoint="handshake.begin",scope="key"} 1`,
		`nexus_rate_limit_unchecked_total{endpoint="handshake.begin"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics have no %s", want)
		}
	}
}

// TestBeginRateLimitsSharedByReplicas: the counts are in Redis, so a
// replica started after another filled a workspace's window refuses too.
func TestBeginRateLimitsSharedByReplicas(t *testing.T) {
	e, _ := limitedEnv(t)
	for range 3 {
		e.mustBegin("oidc")
	}
	second, err := handshake.Start(context.Background(), e.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close(context.Background()) })
	if err := e.svc.Close(context.Background()); err != nil { // only the second one answers now
		t.Fatal(err)
	}
	_, err = e.begin(messages.BeginRequest{Provider: "oidc", WorkspaceID: "ws-1", ReturnURL: returnURL})
	wantLimited(t, err, 45, "workspace")
	if _, err := beginAs(t, e.client, "oidc", "ws-2"); err != nil {
		t.Fatalf("another workspace on the second replica: %v", err)
	}
}

func TestBeginRateConfig(t *testing.T) {
	base := map[string]string{
		"API_KEY": apiKey, "HANDSHAKE_SERVICE_KEY": serviceKey, "REDIS_URL": "redis://127.0.0.1:6379/0", "STATE_KEY": testkit.Key32(t),
		"PUBLIC_URL": "https://connect.example.com", "ALLOWED_RETURN_URLS": "https://app.example.com/cb",
	}
	l := config.FromMap(base)
	cfg := handshake.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.BeginLimits.PerKey.String() + " " + cfg.BeginLimits.PerWorkspace.String(); got != "600/m 60/m" {
		t.Fatalf("default limits = %s", got)
	}
	base["BEGIN_RATE_PER_KEY"], base["BEGIN_RATE_PER_WORKSPACE"] = "0", "10/s"
	l = config.FromMap(base)
	if cfg = handshake.LoadConfig(l); l.Err() != nil || cfg.BeginLimits.PerKey.On() || cfg.BeginLimits.PerWorkspace.String() != "10/s" {
		t.Fatalf("limits %+v (%v)", cfg.BeginLimits, l.Err())
	}
	base["BEGIN_RATE_PER_KEY"], base["BEGIN_RATE_PER_WORKSPACE"] = "lots", "5/500ms"
	l = config.FromMap(base)
	handshake.LoadConfig(l)
	err := l.Err()
	for _, name := range []string{"BEGIN_RATE_PER_KEY", "BEGIN_RATE_PER_WORKSPACE"} {
		if err == nil || !strings.Contains(err.Error(), name+": ") {
			t.Errorf("problems do not name %s: %v", name, err)
		}
	}
}
