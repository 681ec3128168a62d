package system_test

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestServiceBinaries builds every service as its own binary, starts it with
// an empty environment, and checks it refuses to start, naming every missing
// variable it needs and none that belongs to another service.
func TestServiceBinaries(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		needs   []string
		foreign []string
	}{
		{"vault", []string{"API_KEY", "DATABASE_URL", "ENCRYPTION_KEY"}, []string{"STATE_KEY", "REDIS_URL", "PUBLIC_URL"}},
		{"handshake", []string{"API_KEY", "REDIS_URL", "STATE_KEY", "PUBLIC_URL", "ALLOWED_RETURN_URLS"}, []string{"ENCRYPTION_KEY", "DATABASE_URL"}},
		{"admin", []string{"API_KEY", "DATABASE_URL"}, []string{"ENCRYPTION_KEY", "STATE_KEY", "REDIS_URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(dir, tc.name)
			build := exec.Command("go", "build", "-o", bin, "./services/"+tc.name+"/cmd/"+tc.name)
			build.Dir = ".."
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", tc.name, err, out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("%s started without configuration:\n%s", tc.name, out)
			}
			for _, v := range tc.needs {
				if !strings.Contains(string(out), v) {
					t.Errorf("%s does not name the missing %s:\n%s", tc.name, v, out)
				}
			}
			for _, v := range tc.foreign {
				if strings.Contains(string(out), v) {
					t.Errorf("%s asks for %s, which is not its own:\n%s", tc.name, v, out)
				}
			}
		})
	}
}

// TestServiceBinaryLifecycle starts the handshake binary (two listeners) with
// a full configuration against real NATS and Redis, checks both listeners
// answer, and stops it with SIGTERM: it must exit cleanly.
func TestServiceBinaryLifecycle(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "handshake")
	build := exec.Command("go", "build", "-o", bin, "./services/handshake/cmd/handshake")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	public, internal := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"NATS_URL=" + testkit.NATS(t), "REDIS_URL=" + testkit.Redis(t), "STATE_KEY=" + testkit.Key32(t),
		"API_KEY=" + gatewayKey, "PUBLIC_URL=http://" + public, "ALLOWED_RETURN_URLS=http://127.0.0.1:3000",
		"HTTP_ADDR=" + public, "INTERNAL_HTTP_ADDR=" + internal,
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	for _, u := range []string{"http://" + public + "/healthz", "http://" + internal + "/readyz", "http://" + internal + "/metrics"} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered 200 (%v):\n%s", u, err, out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20 s after SIGTERM:\n%s", out.String())
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
