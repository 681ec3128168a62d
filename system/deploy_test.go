package system_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestDockerfileModules: the image's module-download layer copies the go.mod
// and go.sum of every module go.work uses, so a new module cannot be left out
// of it (the build would still work, downloading again on every change).
func TestDockerfileModules(t *testing.T) {
	work, err := os.ReadFile("../go.work")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	use := regexp.MustCompile(`(?m)^\s*\./(\S+)\s*$`).FindAllStringSubmatch(string(work), -1)
	if len(use) == 0 {
		t.Fatal("no modules found in go.work")
	}
	download := strings.Index(string(docker), "RUN go mod download")
	sources := strings.Index(string(docker), "COPY . .")
	if download < 0 || sources < download {
		t.Fatal("deploy/Dockerfile has no go mod download before it copies the sources")
	}
	for _, m := range use {
		dir := m[1]
		if i := strings.Index(string(docker), "COPY "+dir+"/go.* "+dir+"/\n"); i < 0 || i > download {
			t.Errorf("deploy/Dockerfile does not copy %s/go.mod and go.sum before go mod download", dir)
		}
	}
}

// TestComposeConfigurations: each service of docker-compose.yml, with the
// environment the file gives it (every ${VAR} filled in), passes its own
// configuration check: no variable a service needs is missing from the file.
func TestComposeConfigurations(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	subst := regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}`)
	loaders := map[string]func(*config.Loader){
		"vault":     func(l *config.Loader) { vault.LoadConfig(l) },
		"handshake": func(l *config.Loader) { handshake.LoadConfig(l) },
		"admin":     func(l *config.Loader) { admin.LoadConfig(l) },
		"refresher": func(l *config.Loader) { refresher.LoadConfig(l) },
	}
	for name, load := range loaders {
		svc, ok := doc.Services[name]
		if !ok {
			t.Errorf("docker-compose.yml has no %s service", name)
			continue
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = subst.ReplaceAllStringFunc(v, func(m string) string {
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
		l := config.FromMap(env)
		load(l)
		if err := l.Err(); err != nil {
			t.Errorf("docker-compose.yml's %s does not start:\n%v", name, err)
		}
	}
}
