package system_test

import (
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/shared/natsauth"
)

// deployServer runs a real nats-server loaded from deploy/nats/nats.conf,
// with a password per user from the environment, as in production.
func deployServer(t *testing.T) (*server.Server, *server.Options) {
	t.Helper()
	for _, u := range natsauth.Names {
		t.Setenv("NATS_"+strings.ToUpper(u)+"_PASSWORD", "pw-"+u)
	}
	t.Setenv("NATS_SERVER_NAME", "test")
	opts, err := server.ProcessConfigFile(filepath.Join("..", "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/nats.conf does not load: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s, opts
}

// TestDeployUsersMatchTheTable: deploy/nats/users.conf and shared/natsauth
// (from which `make run` builds its embedded server) grant exactly the same.
func TestDeployUsersMatchTheTable(t *testing.T) {
	_, opts := deployServer(t)
	got := map[string]*server.User{}
	for _, u := range opts.Users {
		got[u.Username] = u
	}
	want := natsauth.Users("nexus")
	if len(got) != len(want) {
		t.Errorf("deploy/nats has %d users, the table %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := got[w.Name]
		if !ok {
			t.Errorf("deploy/nats has no user %s", w.Name)
			continue
		}
		same := func(what string, a *server.SubjectPermission, b []string) {
			var have []string
			if a != nil {
				have = slices.Sorted(slices.Values(a.Allow))
				if len(a.Deny) > 0 {
					t.Errorf("%s %s: deny lists are not in the table: %v", w.Name, what, a.Deny)
				}
			}
			if !slices.Equal(have, slices.Sorted(slices.Values(b))) {
				t.Errorf("%s %s:\n deploy/nats %v\n table       %v", w.Name, what, have, slices.Sorted(slices.Values(b)))
			}
		}
		same("publish", g.Permissions.Publish, w.Publish)
		same("subscribe", g.Permissions.Subscribe, w.Subscribe)
		if (g.Permissions.Response != nil) != w.Responder {
			t.Errorf("%s: allow_responses %v in deploy/nats, %v in the table", w.Name, g.Permissions.Response != nil, w.Responder)
		}
	}
}

// user is a connection as one of the deployment's users, recording the
// subjects the server refused it.
type user struct {
	name string
	nc   *nats.Conn
	mu   sync.Mutex
	deny map[string]bool
}

var violation = regexp.MustCompile(`(Publish|Subscription) to "([^"]*)"`)

func connectAs(t *testing.T, s *server.Server, name string) *user {
	t.Helper()
	u := &user{name: name, deny: map[string]bool{}}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(name, "pw-"+name), nats.CustomInboxPrefix(natsauth.InboxPrefix(name)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if m := violation.FindStringSubmatch(err.Error()); m != nil && errors.Is(err, nats.ErrPermissionViolation) {
				u.mu.Lock()
				u.deny[strings.ToLower(m[1][:3])+" "+m[2]] = true
				u.mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatalf("%s cannot connect: %v", name, err)
	}
	t.Cleanup(nc.Close)
	u.nc = nc
	return u
}

// try subscribes to and publishes on the given subjects, then reports which
// of them the server refused ("sub x", "pub y").
func (u *user) try(t *testing.T, subs, pubs []string) map[string]bool {
	t.Helper()
	for _, s := range subs {
		if _, err := u.nc.Subscribe(s, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pubs {
		if err := u.nc.Publish(p, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the refusals arrive asynchronously
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]bool{}
	for k := range u.deny {
		out[k] = true
	}
	return out
}

// concrete turns a permission's wildcards into a subject it covers.
func concrete(s string) string {
	s = strings.ReplaceAll(s, ">", "x.y")
	return strings.ReplaceAll(s, "*", "x")
}

// TestDeployNATSPermissions: for every user of deploy/nats, what an attacker
// holding its password would try is refused, and what its job needs works.
func TestDeployNATSPermissions(t *testing.T) {
	s, _ := deployServer(t)
	internal := []string{
		"nexus.v1.vault.exchange", "nexus.v1.vault.static.store", "nexus.v1.vault.connections.create",
		"nexus.v1.vault.clients.put", "nexus.v1.vault.refresh.run", "nexus.v1.vault.outbox.claim",
		"nexus.v1.admin.providers.create", "nexus.v1.admin.providers.templates.list", "nexus.v1.admin.providers.templates.get",
		"nexus.events.connection.active",
		"$JS.API.STREAM.DELETE.NEXUS_EVENTS", "$JS.API.STREAM.PURGE.NEXUS_EVENTS",
		"$JS.API.CONSUMER.DELETE.NEXUS_EVENTS.someone-else",
		// The operators' view of connections goes through admin; only admin
		// reaches the vault's side of it, and no one but the Gateway reads
		// a credential.
		"nexus.v1.vault.operator.connections.get", "nexus.v1.vault.operator.connections.list", "nexus.v1.vault.operator.connections.revoke",
		"nexus.v1.admin.connections.revoke", "nexus.v1.tokens.get",
		// Another reader's consumer, and a server-named ephemeral one (its
		// name is in the body, where permissions cannot see it).
		"$JS.API.CONSUMER.CREATE.NEXUS_EVENTS", "$JS.API.CONSUMER.CREATE.NEXUS_EVENTS.gateway",
		"$JS.API.CONSUMER.MSG.NEXT.NEXUS_EVENTS.gateway", "$JS.API.CONSUMER.MSG.NEXT.NEXUS_EVENTS.billing",
	}
	for _, u := range natsauth.Users("nexus") {
		t.Run(u.Name, func(t *testing.T) {
			t.Parallel()
			c := connectAs(t, s, u.Name)
			var subs, pubs []string
			wantDenied := map[string]bool{}
			may := func(list []string, subject string) bool {
				for _, p := range list {
					if subjectMatches(p, subject) {
						return true
					}
				}
				return false
			}
			// Attacks: everything, every inbox, the vault's subjects, the
			// other users' inboxes, internal subjects and events.
			for _, sub := range []string{">", "_INBOX.>", "nexus.v1.vault.>", "nexus.>", "$JS.>"} {
				if !may(u.Subscribe, sub) {
					subs = append(subs, sub)
					wantDenied["sub "+sub] = true
				}
			}
			for _, other := range natsauth.Names {
				if other != u.Name {
					sub := natsauth.InboxPrefix(other) + ".>"
					subs = append(subs, sub)
					wantDenied["sub "+sub] = true
				}
			}
			for _, pub := range internal {
				if !may(u.Publish, pub) {
					pubs = append(pubs, pub)
					wantDenied["pub "+pub] = true
				}
			}
			// Its job: every subject it is granted.
			for _, sub := range u.Subscribe {
				subs = append(subs, sub)
			}
			for _, pub := range u.Publish {
				pubs = append(pubs, concrete(pub))
			}
			got := c.try(t, subs, pubs)
			for k := range wantDenied {
				if !got[k] {
					t.Errorf("%s may %s", u.Name, k)
				}
			}
			for k := range got {
				if !wantDenied[k] {
					t.Errorf("%s is refused %s, which its job needs", u.Name, k)
				}
			}
		})
	}
}

// subjectMatches reports whether NATS subject pattern p covers subject s
// (s itself may hold wildcards: p must cover all it matches).
func subjectMatches(p, s string) bool {
	pt, st := strings.Split(p, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		if st[i] == ">" {
			return false
		}
		if tok != "*" && tok != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}

// TestRepliesReachOnlyTheirRequester: while every other user listens on
// everything it may subscribe to, the Gateway's tokens.get reply reaches the
// Gateway and no one else.
func TestRepliesReachOnlyTheirRequester(t *testing.T) {
	s, opts := deployServer(t)
	const secret = "access-token-for-the-gateway-only"
	vault := connectAs(t, s, natsauth.Vault)
	if _, err := vault.nc.QueueSubscribe("nexus.v1.tokens.get", "nexus-vault", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"access_token":"` + secret + `"}`))
	}); err != nil {
		t.Fatal(err)
	}
	_ = vault.nc.Flush()

	var (
		mu    sync.Mutex
		heard []string
	)
	// What each user may subscribe to, as the server loaded it.
	for _, u := range opts.Users {
		if u.Username == natsauth.Gateway {
			continue
		}
		c := connectAs(t, s, u.Username)
		for _, sub := range u.Permissions.Subscribe.Allow {
			if u.Username == natsauth.Vault && sub == "nexus.v1.tokens.get" {
				continue // the responder itself
			}
			if _, err := c.nc.Subscribe(sub, func(m *nats.Msg) {
				if strings.Contains(string(m.Data), secret) {
					mu.Lock()
					heard = append(heard, u.Username+" on "+m.Subject)
					mu.Unlock()
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.nc.Flush()
	}
	gw := connectAs(t, s, natsauth.Gateway)
	for i := 0; i < 20; i++ {
		m, err := gw.nc.Request("nexus.v1.tokens.get", []byte(`{"connection_id":"c"}`), 2*time.Second)
		if err != nil || !strings.Contains(string(m.Data), secret) {
			t.Fatalf("the Gateway got no reply: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(heard)
	if len(heard) > 0 {
		t.Fatalf("a reply meant for the Gateway reached: %v", heard)
	}
	// Nor can another user ask for it: only the Gateway (and no service)
	// publishes tokens.get.
	hs := connectAs(t, s, natsauth.Handshake)
	if got := hs.try(t, nil, []string{"nexus.v1.tokens.get"}); !got["pub nexus.v1.tokens.get"] {
		t.Fatal("the handshake may request tokens")
	}
}
