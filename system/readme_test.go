package system_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A README block is marked, on the line before its ```sh fence, when it
// cannot run here; every other ```sh block is run by TestREADME.
var readmeMarkers = map[string]string{
	"needs-internet": "needs the internet (a provider's discovery document, a consent at the provider)",
	"runs-make":      "is make run or make test itself",
	"needs-docker":   "needs a Docker engine (docker compose), which the tests do not start",
	"needs-cluster":  "needs a Kubernetes cluster (kubectl)",
}

var markerLine = regexp.MustCompile(`^<!--\s*readme:\s*(\S+)\s*-->$`)

// readmeBlock is one ```sh block of the README.
type readmeBlock struct {
	line   int    // of the fence
	marker string // "" when the block runs
	code   string
}

// readmeBlocks returns the README's ```sh blocks, with the marker before each.
func readmeBlocks(r io.Reader) ([]readmeBlock, error) {
	var (
		blocks  []readmeBlock
		cur     *readmeBlock
		code    strings.Builder
		marker  string
		markerN int
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.code = code.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line + "\n")
		case strings.HasPrefix(line, "```sh"):
			cur = &readmeBlock{line: n, marker: marker}
			code.Reset()
			marker = ""
		case markerLine.MatchString(strings.TrimSpace(line)):
			if marker != "" {
				return nil, fmt.Errorf("line %d: readme marker %q is not followed by a ```sh block", markerN, marker)
			}
			marker, markerN = markerLine.FindStringSubmatch(strings.TrimSpace(line))[1], n
			if _, ok := readmeMarkers[marker]; !ok {
				return nil, fmt.Errorf("line %d: unknown readme marker %q (known: needs-internet, runs-make, needs-docker, needs-cluster)", n, marker)
			}
		case strings.TrimSpace(line) != "" && marker != "":
			return nil, fmt.Errorf("line %d: readme marker %q is not followed by a ```sh block", markerN, marker)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: ```sh block never closed", cur.line)
	}
	if marker != "" {
		return nil, fmt.Errorf("line %d: readme marker %q is not followed by a ```sh block", markerN, marker)
	}
	return blocks, sc.Err()
}

// TestCIRunsTheReadmeTestCommand: .ci/run is a script bash accepts whose one
// make invocation is `make test`, the README's test command, after its
// setup (an edit once ran a stray make of several targets before it).
func TestCIRunsTheReadmeTestCommand(t *testing.T) {
	const script = "../.ci/run"
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n .ci/run: %v\n%s", err, out)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	var makes []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "make ") || line == "make" {
			makes = append(makes, line)
		}
	}
	if len(makes) != 1 || makes[0] != "make test" {
		t.Fatalf(".ci/run runs %q, want exactly [make test]", makes)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "make test") {
		t.Fatal("the README does not name make test")
	}
}

func TestReadmeBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []readmeBlock
		err      string
	}{
		{"plain and marked", "text\n```sh\necho a\n```\n<!-- readme: needs-internet -->\n```sh\ncurl x\n```\n```go\nx\n```\n",
			[]readmeBlock{{line: 2, code: "echo a\n"}, {line: 6, marker: "needs-internet", code: "curl x\n"}}, ""},
		{"blank line after the marker", "<!-- readme: runs-make -->\n\n```sh\nmake run\n```\n",
			[]readmeBlock{{line: 3, marker: "runs-make", code: "make run\n"}}, ""},
		{"unknown marker", "<!-- readme: flaky -->\n```sh\nx\n```\n", nil, "unknown readme marker"},
		{"marker before text", "<!-- readme: needs-internet -->\ntext\n```sh\nx\n```\n", nil, "not followed"},
		{"unclosed", "```sh\nx\n", nil, "never closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readmeBlocks(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// readmePorts are the development ports the README's commands name; the
// test's launcher listens elsewhere (other tests and a developer's own make
// run share the machine), and this is the only change made to a command.
var readmePorts = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):(8080|8081|8082|8083|9080|4322|18090)\b`)

// readmeDevProvider finds what the README's make run line for the
// development provider sets (NEXUS_DEV_PROVIDER=..., its token lifetime),
// so the test's launcher runs the provider as the README says.
var readmeDevProvider = regexp.MustCompile(`\b(NEXUS_DEV_PROVIDER[A-Z_]*)=(\S+)`)

// devProviderEnv is the development provider's variables from the README's
// make run blocks, its address moved to a free port like every other.
func devProviderEnv(t *testing.T, blocks []readmeBlock) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, b := range blocks {
		if b.marker != "runs-make" {
			continue
		}
		for _, m := range readmeDevProvider.FindAllStringSubmatch(b.code, -1) {
			env[m[1]] = m[2]
		}
	}
	if env["NEXUS_DEV_PROVIDER"] == "" {
		t.Fatal("README.md: no make run line starts the development provider (NEXUS_DEV_PROVIDER=...), which the offline walk-through needs")
	}
	env["NEXUS_DEV_PROVIDER"] = freeAddr(t)
	return env
}

// failed reports output that says a command failed although it exited 0:
// curl -s and nats req print an error reply and succeed.
var failed = regexp.MustCompile(`"error":\s*\{|Nats-Service-Error|nats: error:`)

// TestREADME runs the README's ```sh blocks as printed, in order, in one
// shell (as a reader types them into one terminal), against the launcher
// that make run starts, with a data dir of its own and free ports. Blocks
// marked as needing the internet or being make itself are skipped and
// listed; every other block must exit 0 and print no error reply.
func TestREADME(t *testing.T) {
	natsBin := tool(t, "nats", "install it with: go install github.com/nats-io/natscli/nats@v0.5.0 (make test installs it when missing)")
	tool(t, "curl", "install it (Debian/Ubuntu: apt-get install curl)")
	bashBin := tool(t, "bash", "install bash")

	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(f)
	f.Close()
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}

	bin := binary(t, "./system/cmd/nexus")
	// The README's nexus-admin commands find it on PATH, as it says.
	adminBin := binary(t, "./services/admin/cmd/nexus-admin")
	work := t.TempDir()
	env := launcherEnv(t, work)
	maps.Copy(env, devProviderEnv(t, blocks))
	env["PATH"] = filepath.Dir(adminBin) + string(os.PathListSeparator) + filepath.Dir(natsBin) + string(os.PathListSeparator) + env["PATH"]
	ports := map[string]string{
		"8080": env["HANDSHAKE_HTTP_ADDR"], "9080": env["HANDSHAKE_INTERNAL_HTTP_ADDR"], "8081": env["ADMIN_HTTP_ADDR"],
		"8082": env["VAULT_HTTP_ADDR"], "8083": env["REFRESHER_HTTP_ADDR"], "4322": "127.0.0.1:" + env["NEXUS_NATS_PORT"],
		"18090": env["NEXUS_DEV_PROVIDER"],
	}
	l := startLauncher(t, bin, env)

	sh := startShell(t, bashBin, work, map[string]string{"PATH": env["PATH"], "HOME": work, "TMPDIR": t.TempDir(), "LANG": "C.UTF-8"})
	if out, err := sh.run("set -a; . .nexus-dev/keys.env; set +a"); err != nil {
		t.Fatalf("loading the development keys: %v\n%s", err, out)
	}
	var ran, skipped []string
	for _, b := range blocks {
		where := fmt.Sprintf("README.md:%d", b.line)
		if b.marker != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s: %s)", where, b.marker, readmeMarkers[b.marker]))
			continue
		}
		code := readmePorts.ReplaceAllStringFunc(b.code, func(m string) string {
			host, port, _ := strings.Cut(m, ":")
			_, moved, _ := strings.Cut(ports[port], ":")
			return host + ":" + moved
		})
		out, err := sh.run(code)
		if err == nil && failed.MatchString(out) {
			err = fmt.Errorf("it printed an error reply")
		}
		if err != nil {
			t.Fatalf("%s failed: %v\n--- the block (ports moved: %v)\n%s--- its output\n%s--- the launcher's log\n%s",
				where, err, ports, code, out, l.output())
		}
		t.Logf("%s:\n%s", where, out)
		ran = append(ran, where)
	}
	t.Logf("ran %d README blocks: %s", len(ran), strings.Join(ran, ", "))
	t.Logf("skipped %d README blocks:\n  %s", len(skipped), strings.Join(skipped, "\n  "))
	if len(ran) == 0 {
		t.Fatal("no README block ran")
	}
	sh.close(t)
	l.stop(t)
}

// tool finds a program the README's commands need, or fails saying how to
// install it. Go's own bin directory counts too: go install puts the nats
// CLI there, and it is not always on PATH.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			continue
		}
		if v == "GOPATH" {
			dir = filepath.Join(filepath.SplitList(dir)[0], "bin")
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	t.Fatalf("the README's commands need %s, which is not installed: %s", name, install)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// shell is one bash session, as in a terminal: variables set by one block
// are there for the next. It runs with errexit, nounset and pipefail, so a
// failing command ends the session, and that block fails.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	exit  chan error
	dir   string
	n     int
}

func startShell(t *testing.T, bash, dir string, env map[string]string) *shell {
	t.Helper()
	s := &shell{cmd: exec.Command(bash, "--noprofile", "--norc", "-euo", "pipefail", "-s"), lines: make(chan string), exit: make(chan error, 1), dir: t.TempDir()}
	s.cmd.Dir = dir
	s.cmd.Env = envList(env)
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		s.exit <- s.cmd.Wait()
	}()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// run runs code as one block and returns what it printed.
func (s *shell) run(code string) (string, error) {
	s.n++
	script := filepath.Join(s.dir, fmt.Sprintf("block-%d.sh", s.n))
	out := script + ".out"
	if err := os.WriteFile(script, []byte(code), 0o600); err != nil {
		return "", err
	}
	done := fmt.Sprintf("__readme_block_%d_done__", s.n)
	if _, err := fmt.Fprintf(s.stdin, ". %q > %q 2>&1 < /dev/null\necho %s\n", script, out, done); err != nil {
		return "", fmt.Errorf("the shell is gone: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var err error
	select {
	case line := <-s.lines:
		if line != done {
			err = fmt.Errorf("unexpected shell output %q", line)
		}
	case e := <-s.exit:
		err = fmt.Errorf("a command failed, ending the shell (%v)", e)
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		err = fmt.Errorf("still running after 90 s (waiting for input?)")
	}
	b, _ := os.ReadFile(out)
	return string(b), err
}

func (s *shell) close(t *testing.T) {
	t.Helper()
	s.stdin.Close()
	select {
	case err := <-s.exit:
		if err != nil {
			t.Errorf("shell: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the shell did not exit")
	}
}
