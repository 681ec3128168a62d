package system_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/testkit"
)

// bins holds the binaries the tests build, once per run.
var bins struct {
	sync.Mutex
	dir   string
	built map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binary builds the command in pkg (relative to the workspace root, such as
// ./services/vault/cmd/vault) once per test run and returns its path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	return binaries(t, pkg)[pkg]
}

// binaries is binary for several commands, the ones not built yet built by
// one go command (which links them in parallel). It returns their paths by
// package.
func binaries(t *testing.T, pkgs ...string) map[string]string {
	t.Helper()
	bins.Lock()
	defer bins.Unlock()
	if bins.dir == "" {
		dir, err := os.MkdirTemp("", "nexus-system-bin-")
		if err != nil {
			t.Fatal(err)
		}
		bins.dir, bins.built = dir, map[string]string{}
	}
	var missing []string
	for _, pkg := range pkgs {
		if _, ok := bins.built[pkg]; !ok {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		// -o a directory: each command is named after its package's last element.
		build := exec.Command("go", append([]string{"build", "-o", bins.dir + string(filepath.Separator)}, missing...)...)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %v: %v\n%s", missing, err, out)
		}
		for _, pkg := range missing {
			bins.built[pkg] = filepath.Join(bins.dir, filepath.Base(pkg))
		}
	}
	out := map[string]string{}
	for _, pkg := range pkgs {
		out[pkg] = bins.built[pkg]
	}
	return out
}

// runBinary runs bin with exactly env and args, and returns its exit code
// and combined output.
func runBinary(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not exit within 30 s:\n%s%s", bin, args, &stdout, &stderr)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s: %v", bin, err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// TestServiceBinaries builds every service as its own binary, starts it with
// an empty environment, and checks it refuses to start, naming every missing
// variable it needs and none that belongs to another service.
func TestServiceBinaries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		needs   []string
		foreign []string
	}{
		{"vault", []string{"API_KEY", "DATABASE_URL", "ENCRYPTION_KEY", "HANDSHAKE_SERVICE_KEY", "ADMIN_SERVICE_KEY", "REFRESHER_SERVICE_KEY"},
			[]string{"STATE_KEY", "REDIS_URL", "PUBLIC_URL", "ADMIN_API_KEY"}},
		{"handshake", []string{"API_KEY", "HANDSHAKE_SERVICE_KEY", "REDIS_URL", "STATE_KEY", "PUBLIC_URL", "ALLOWED_RETURN_URLS"},
			[]string{"ENCRYPTION_KEY", "DATABASE_URL", "ADMIN_API_KEY", "ADMIN_SERVICE_KEY"}},
		{"admin", []string{"ADMIN_API_KEY", "ADMIN_SERVICE_KEY", "HANDSHAKE_SERVICE_KEY", "DATABASE_URL"}, []string{"ENCRYPTION_KEY", "STATE_KEY", "REDIS_URL", "- API_KEY:"}},
		{"refresher", []string{"REFRESHER_SERVICE_KEY"}, []string{"- API_KEY:", "DATABASE_URL", "ENCRYPTION_KEY", "ADMIN_SERVICE_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := binary(t, "./services/"+tc.name+"/cmd/"+tc.name)
			code, stdout, stderr := runBinary(t, bin, []string{"PATH=/usr/bin:/bin"})
			out := stdout + stderr
			if code == 0 {
				t.Fatalf("%s started without configuration:\n%s", tc.name, out)
			}
			for _, v := range tc.needs {
				if !strings.Contains(out, v) {
					t.Errorf("%s does not name the missing %s:\n%s", tc.name, v, out)
				}
			}
			for _, v := range tc.foreign {
				if strings.Contains(out, v) {
					t.Errorf("%s asks for %s, which is not its own:\n%s", tc.name, v, out)
				}
			}
		})
	}
}

// TestBinaryFlags runs every binary's -h and -version with an empty
// environment: help and version need no configuration, exit 0, print to
// stdout, and -h lists the variables the binary reads (its own, not
// another's).
func TestBinaryFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pkg      string
		reads    []string // in -h
		notReads []string
	}{
		{"vault", "./services/vault/cmd/vault", []string{"NATS_URL", "API_KEY", "CROSS_WORKSPACE_API_KEY", "HANDSHAKE_SERVICE_KEY", "HTTP_ADDR", "DATABASE_URL", "ENCRYPTION_KEY", "ENCRYPTION_KEYS_PREVIOUS", "ENCRYPTION_CANARY_RECREATE", "PROVIDER_PRIVATE_NETWORKS"}, []string{"STATE_KEY", "REDIS_URL", "ADMIN_API_KEY"}},
		{"handshake", "./services/handshake/cmd/handshake", []string{"NATS_URL", "API_KEY", "HANDSHAKE_SERVICE_KEY", "REDIS_URL", "STATE_KEY", "STATE_KEYS_PREVIOUS", "PUBLIC_URL", "INTERNAL_HTTP_ADDR", "PROVIDER_PRIVATE_NETWORKS"}, []string{"ENCRYPTION_KEY", "DATABASE_URL", "ADMIN_API_KEY"}},
		{"admin", "./services/admin/cmd/admin", []string{"NATS_URL", "ADMIN_API_KEY", "ADMIN_SERVICE_KEY", "HANDSHAKE_SERVICE_KEY", "HTTP_ADDR", "DATABASE_URL", "PROVIDER_PRIVATE_NETWORKS"}, []string{"ENCRYPTION_KEY", "STATE_KEY"}},
		{"refresher", "./services/refresher/cmd/refresher", []string{"NATS_URL", "REFRESHER_SERVICE_KEY", "HTTP_ADDR", "REFRESH_CONCURRENCY"}, []string{"DATABASE_URL", "ENCRYPTION_KEY", "ADMIN_API_KEY", "PROVIDER_PRIVATE_NETWORKS"}},
		{"nexus", "./system/cmd/nexus", []string{"NEXUS_NATS_PORT", "NEXUS_DATA_DIR", "ADMIN_HTTP_ADDR", "VAULT_HTTP_ADDR", "HANDSHAKE_HTTP_ADDR", "HANDSHAKE_INTERNAL_HTTP_ADDR", "REFRESHER_HTTP_ADDR", "PUBLIC_URL", "DATABASE_URL", "PROVIDER_PRIVATE_NETWORKS", "NEXUS_DEV_PROVIDER", "NEXUS_DEV_PROVIDER_TOKEN_TTL"}, nil},
		{"nexus-admin", "./services/admin/cmd/nexus-admin", []string{"ADMIN_URL", "ADMIN_API_KEY"}, nil},
		{"nexus-bench", "./system/cmd/nexus-bench", nil, nil},
		{"nexus-soak", "./system/cmd/nexus-soak", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := binary(t, tc.pkg)
			env := []string{"PATH=/usr/bin:/bin"}

			code, stdout, stderr := runBinary(t, bin, env, "-version")
			if code != 0 || stderr != "" {
				t.Fatalf("-version: exit %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, tc.name+" ") || !strings.Contains(stdout, "go1.") || !strings.Contains(stdout, "\tpath\t") {
				t.Errorf("-version does not give the name, version and build information:\n%s", stdout)
			}
			if tc.reads == nil {
				return
			}
			code, stdout, stderr = runBinary(t, bin, env, "-h")
			if code != 0 || stderr != "" {
				t.Fatalf("-h: exit %d, stderr %q", code, stderr)
			}
			for _, v := range tc.reads {
				if !strings.Contains(stdout, v) {
					t.Errorf("-h does not list %s:\n%s", v, stdout)
				}
			}
			for _, v := range tc.notReads {
				if strings.Contains(stdout, v) {
					t.Errorf("-h lists %s, which %s does not read:\n%s", v, tc.name, stdout)
				}
			}
			if strings.Contains(stdout, "invalid configuration") {
				t.Errorf("-h reports configuration problems instead of helping:\n%s", stdout)
			}
		})
	}
}

// TestServiceBinaryLifecycle starts the handshake binary (two listeners) with
// a full configuration against real NATS and Redis, checks both listeners
// answer, and stops it with SIGTERM: it must exit cleanly.
func TestServiceBinaryLifecycle(t *testing.T) {
	bin := binary(t, "./services/handshake/cmd/handshake")
	public, internal := freeAddr(t), freeAddr(t)
	env := []string{
		"NATS_URL=" + testkit.NATS(t), "REDIS_URL=" + testkit.Redis(t), "STATE_KEY=" + testkit.Key32(t),
		"API_KEY=" + gatewayKey, "HANDSHAKE_SERVICE_KEY=" + rotatedKey, "PUBLIC_URL=http://" + public, "ALLOWED_RETURN_URLS=http://127.0.0.1:3000",
		"HTTP_ADDR=" + public, "INTERNAL_HTTP_ADDR=" + internal,
	}
	// -healthcheck probes the internal listener's /readyz: nothing there yet.
	if code, _, stderr := runBinary(t, bin, env, "-healthcheck"); code != 1 || !strings.Contains(stderr, internal) {
		t.Fatalf("-healthcheck before the start: exit %d (want 1), %q", code, stderr)
	}
	p, err := startProcess("handshake", bin, env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	for _, u := range []string{"http://" + public + "/healthz", "http://" + internal + "/readyz", "http://" + internal + "/metrics"} {
		waitOK(t, u, p.output)
	}
	// As a container health check runs it: the same environment, -healthcheck, nothing else.
	if code, stdout, stderr := runBinary(t, bin, env, "-healthcheck"); code != 0 {
		t.Fatalf("-healthcheck of the running handshake: exit %d\n%s%s", code, stdout, stderr)
	}
	if err := p.stop(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.output())
	}
}

// process is a service binary running with its output kept in a file,
// that a test can kill and start again with the same command.
type process struct {
	name, bin string
	env       []string
	log       string // the output of every start, in order
	cmd       *exec.Cmd
	done      chan struct{} // closed when this start has exited, with err its exit
	err       error
}

// startProcess runs bin with exactly env, its output appended to a file in
// dir. The caller kills it when done (t.Cleanup(p.kill)).
func startProcess(name, bin string, env []string, dir string) (*process, error) {
	p := &process{name: name, bin: bin, env: env, log: filepath.Join(dir, name+".log")}
	return p, p.start()
}

// start runs the process again (once the last start has exited).
func (p *process) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { p.err = cmd.Wait(); close(done) }()
	return nil
}

// kill sends SIGKILL and waits for the exit: nothing of the process runs
// after it returns.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to wait for a clean exit.
func (p *process) stop(wait time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("%s: SIGTERM: %w", p.name, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: exit after SIGTERM: %w", p.name, p.err)
		}
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s: no exit %s after SIGTERM", p.name, wait)
	}
}

// output is what every start of the process wrote.
func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitOK polls u until it answers 200, failing after 20 seconds with log().
func waitOK(t *testing.T, u string, log func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200 (%v):\n%s", u, err, log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
