package system_test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// composeService is the part of a docker-compose.yml service these tests read.
type composeService struct {
	Image    string   `yaml:"image"`
	Profiles []string `yaml:"profiles"`
	Command  []string `yaml:"command"`
	Build    struct {
		Args map[string]string `yaml:"args"`
	} `yaml:"build"`
	Environment map[string]string         `yaml:"environment"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

// serviceLoaders are the four services' configuration loaders.
var serviceLoaders = map[string]func(*config.Loader){
	"vault":     func(l *config.Loader) { vault.LoadConfig(l) },
	"handshake": func(l *config.Loader) { handshake.LoadConfig(l) },
	"admin":     func(l *config.Loader) { admin.LoadConfig(l) },
	"refresher": func(l *config.Loader) { refresher.LoadConfig(l) },
}

// composeSubst fills in the ${VAR}, ${VAR:-default} and ${VAR:?message}
// of a compose value with values each service accepts.
func composeSubst(t *testing.T, v string) string {
	subst := regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}`)
	return subst.ReplaceAllStringFunc(v, func(m string) string {
		ref := subst.FindStringSubmatch(m)
		if strings.HasPrefix(ref[2], ":-") && ref[2] != ":-" {
			return ref[2][2:]
		}
		switch {
		case ref[1] == "ENCRYPTION_KEY" || ref[1] == "STATE_KEY":
			return testkit.Key32(t)
		case ref[2] == ":-":
			return ""
		}
		return "compose-" + strings.ToLower(ref[1]) + "-0123456789"
	})
}

// checkServiceEnv loads service's configuration from env and returns the
// problems: a variable the service does not read (a typo, or one meant for
// another service), and every problem of its own configuration check.
func checkServiceEnv(service string, env map[string]string) []string {
	load, ok := serviceLoaders[service]
	if !ok {
		return []string{fmt.Sprintf("%q is not a service", service)}
	}
	read := map[string]bool{}
	l := config.FromFunc(func(k string) (string, bool) {
		read[k] = true
		v, ok := env[k]
		return v, ok
	})
	load(l)
	var out []string
	for k := range env {
		if !read[k] {
			out = append(out, fmt.Sprintf("sets %s, which the %s does not read", k, service))
		}
	}
	if err := l.Err(); err != nil {
		out = append(out, fmt.Sprintf("does not start: %v", err))
	}
	sort.Strings(out)
	return out
}

// singleNode are the services of the default (no profile) shape that the
// cluster profile must not lean on: postgres and redis are shared, standing
// in for PostgreSQL HA and Redis Sentinel.
var singleNode = []string{"nats", "vault", "handshake", "admin", "refresher"}

// checkComposeCluster returns every problem of docker-compose.yml's cluster
// profile (raw), reading the NATS node configurations it names from
// natsDir (deploy/nats).
func checkComposeCluster(t *testing.T, raw []byte, natsDir string) []string {
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return []string{fmt.Sprintf("docker-compose.yml: %v", err)}
	}
	var problems []string
	bad := func(svc, format string, args ...any) {
		problems = append(problems, svc+": "+fmt.Sprintf(format, args...))
	}
	// Every dependency exists, in every profile.
	for name, s := range doc.Services {
		for dep := range s.DependsOn {
			if _, ok := doc.Services[dep]; !ok {
				bad(name, "depends on %s, which is not a service", dep)
			}
		}
	}
	inCluster := func(s composeService) bool { return slices.Contains(s.Profiles, "cluster") }

	// The NATS nodes: three, each loading a config under natsDir with
	// JetStream, a cluster port and routes to the two others.
	var nodes []string
	for name, s := range doc.Services {
		if inCluster(s) && strings.HasPrefix(s.Image, "nats:") {
			nodes = append(nodes, name)
		}
	}
	sort.Strings(nodes)
	if len(nodes) != 3 {
		bad("cluster", "has %d NATS nodes (%v), want 3", len(nodes), nodes)
	}
	for _, name := range nodes {
		s := doc.Services[name]
		problems = append(problems, checkNATSNode(t, name, s, nodes, natsDir)...)
	}

	// The services: two replicas of each, probed on /readyz by their own
	// binary, with an environment their configuration check accepts, on
	// the cluster's NATS.
	replicas := map[string]int{}
	replicaIDs := map[string]string{}
	// What the single-node shape sets for each service, every replica
	// sets too (a variable added to one shape only is a feature missing
	// from the other).
	single := map[string]map[string]string{}
	for _, s := range doc.Services {
		if svc := s.Build.Args["SERVICE"]; svc != "" && !inCluster(s) {
			single[svc] = s.Environment
		}
	}
	for name, s := range doc.Services {
		if !inCluster(s) {
			continue
		}
		for k := range single[s.Build.Args["SERVICE"]] {
			if _, ok := s.Environment[k]; !ok {
				bad(name, "does not set %s, which the single-node %s sets", k, s.Build.Args["SERVICE"])
			}
		}
		for dep := range s.DependsOn {
			if slices.Contains(singleNode, dep) {
				bad(name, "depends on %s, a service of the single-node shape", dep)
			}
		}
		svc := s.Build.Args["SERVICE"]
		if svc == "" {
			continue
		}
		n := 1
		if s.Deploy.Replicas != nil {
			n = *s.Deploy.Replicas
		}
		replicas[svc] += n
		if !slices.Equal(s.Healthcheck.Test, []string{"CMD", "/app", "-healthcheck"}) {
			bad(name, "healthcheck is %q, want the binary's own probe of /readyz: [CMD /app -healthcheck]", s.Healthcheck.Test)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = composeSubst(t, v)
		}
		for _, p := range checkServiceEnv(svc, env) {
			bad(name, "%s", p)
		}
		servers := config.NATSServers(env["NATS_URL"])
		for _, node := range nodes {
			found := false
			for _, u := range servers {
				if strings.Contains(u, "@"+node+":4222") || strings.Contains(u, "//"+node+":4222") {
					found = true
				}
			}
			if !found {
				bad(name, "NATS_URL does not name the cluster's node %s", node)
			}
		}
		switch svc {
		case "vault":
			id := env["VAULT_REPLICA_ID"]
			if id == "" {
				bad(name, "has no VAULT_REPLICA_ID: each vault needs its own")
			} else if other, ok := replicaIDs[id]; ok {
				bad(name, "has the VAULT_REPLICA_ID of %s (%s)", other, id)
			}
			replicaIDs[id] = name
		case "refresher":
			if env["EVENTS_REPLICAS"] != "3" {
				bad(name, "EVENTS_REPLICAS is %q, want 3 on a 3-node JetStream", env["EVENTS_REPLICAS"])
			}
		}
	}
	for svc := range serviceLoaders {
		if replicas[svc] != 2 {
			bad("cluster", "runs %d replicas of the %s, want 2", replicas[svc], svc)
		}
	}
	sort.Strings(problems)
	return problems
}

// checkNATSNode checks one NATS node of the cluster profile: the config it
// loads (from natsDir) parses, has JetStream, the production users, and
// routes to every other node.
func checkNATSNode(t *testing.T, name string, s composeService, nodes []string, natsDir string) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}
	if !slices.Contains(s.Volumes, "./deploy/nats:/etc/nats:ro") {
		bad("does not mount ./deploy/nats at /etc/nats")
	}
	if len(s.Command) != 2 || s.Command[0] != "-c" || !strings.HasPrefix(s.Command[1], "/etc/nats/") {
		bad("command %q does not load a config from /etc/nats", s.Command)
		return problems
	}
	if s.Healthcheck.Test == nil {
		bad("has no healthcheck")
	}
	file := filepath.Join(natsDir, path.Clean(strings.TrimPrefix(s.Command[1], "/etc/nats/")))
	for k, v := range s.Environment {
		t.Setenv(k, composeSubst(t, v))
	}
	if s.Environment["NATS_SERVER_NAME"] == "" {
		bad("has no NATS_SERVER_NAME")
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		bad("%s does not load: %v", file, err)
		return problems
	}
	if !opts.JetStream {
		bad("%s has no JetStream", file)
	}
	if opts.ServerName != s.Environment["NATS_SERVER_NAME"] {
		bad("server name is %q, want NATS_SERVER_NAME", opts.ServerName)
	}
	var users []string
	for _, u := range opts.Users {
		users = append(users, u.Username)
	}
	sort.Strings(users)
	want := slices.Clone(natsauth.Names)
	sort.Strings(want)
	if !slices.Equal(users, want) {
		bad("%s has users %v, want the production ones %v", file, users, want)
	}
	if opts.Cluster.Port == 0 {
		bad("%s has no cluster port", file)
	}
	for _, other := range nodes {
		if other == name {
			continue
		}
		found := false
		for _, r := range opts.Routes {
			host, port, _ := net.SplitHostPort(r.Host)
			if host == other && port == fmt.Sprint(opts.Cluster.Port) {
				found = true
			}
		}
		if !found {
			bad("%s has no route to %s:%d", file, other, opts.Cluster.Port)
		}
	}
	return problems
}

// TestComposeCluster: docker-compose.yml's cluster profile is a 3-node NATS
// cluster with JetStream routed to each other and two replicas of each
// service, each with its health check and an environment it accepts.
func TestComposeCluster(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkComposeCluster(t, raw, filepath.Join("..", "deploy", "nats")) {
		t.Error(p)
	}
}

// TestComposeClusterCheckCatches: the check of TestComposeCluster fails on
// broken copies of docker-compose.yml and deploy/nats/cluster-node.conf.
func TestComposeClusterCheckCatches(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	node, err := os.ReadFile("../deploy/nats/cluster-node.conf")
	if err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile("../deploy/nats/users.conf")
	if err != nil {
		t.Fatal(err)
	}
	natsDir := func(t *testing.T, nodeConf string) string {
		dir := t.TempDir()
		for f, b := range map[string]string{"cluster-node.conf": nodeConf, "users.conf": string(users)} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	replace := func(t *testing.T, s, old, new string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("%q is not in the file", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name          string
		compose, conf func(t *testing.T, s string) string
		want          string
	}{
		{"a variable no service reads", func(t *testing.T, s string) string {
			return replace(t, s, "  EVENTS_REPLICAS: \"3\"\n", "  EVENTS_REPLICAS: \"3\"\n  EVENT_REPLICAS: \"3\"\n")
		}, nil, "sets EVENT_REPLICAS, which the refresher does not read"},
		{"a dependency that is not a service", func(t *testing.T, s string) string {
			return replace(t, s, "vault-2: { condition: service_healthy } }\n    environment: *refresher-env", "vault-3: { condition: service_healthy } }\n    environment: *refresher-env")
		}, nil, "refresher-2: depends on vault-3, which is not a service"},
		{"no healthcheck", func(t *testing.T, s string) string {
			return replace(t, s, "x-cluster-service: &cluster-service\n  <<: *service\n", "x-cluster-service: &cluster-service\n  <<: *service\n  healthcheck: { test: [\"NONE\"] }\n")
		}, nil, "healthcheck is"},
		{"one replica", func(t *testing.T, s string) string {
			return replace(t, s, "  admin-2:\n    <<: *cluster-service\n", "  admin-2:\n    <<: *cluster-service\n    profiles: [other]\n")
		}, nil, "runs 1 replicas of the admin, want 2"},
		{"a route missing", nil, func(t *testing.T, s string) string {
			return replace(t, s, "    nats-route://nats-3:6222\n", "")
		}, "has no route to nats-3:6222"},
		{"a config that is not there", func(t *testing.T, s string) string {
			return replace(t, s, `command: ["-c", "/etc/nats/cluster-node.conf"]`, `command: ["-c", "/etc/nats/cluster.conf"]`)
		}, nil, "cluster.conf does not load"},
		{"the users left out", nil, func(t *testing.T, s string) string {
			return replace(t, s, "include ./users.conf", "")
		}, "want the production ones"},
		{"a vault replica id shared", func(t *testing.T, s string) string {
			return replace(t, s, "VAULT_REPLICA_ID: vault-2 }", "VAULT_REPLICA_ID: vault-1 }")
		}, nil, "has the VAULT_REPLICA_ID of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compose, conf := string(raw), string(node)
			if tc.compose != nil {
				compose = tc.compose(t, compose)
			}
			if tc.conf != nil {
				conf = tc.conf(t, conf)
			}
			problems := checkComposeCluster(t, []byte(compose), natsDir(t, conf))
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("no problem says %q; got:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}
