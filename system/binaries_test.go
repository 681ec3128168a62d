package system_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
