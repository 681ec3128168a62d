// Command nexus-admin is the operator's CLI: admin's API over NATS or HTTP,
// providers as documents in git (apply), connections, events and keys.
//
//	nexus-admin apply -f DIR|FILE [-prune] [-dry-run] [-http URL]
//	nexus-admin connections list [-workspace W] [-provider P] [-status S] [-limit N] [-cursor C] [-o json] [-http URL]
//	nexus-admin connections get|revoke ID [-workspace W] [-o json] [-http URL]
//	nexus-admin events tail [-durable NAME] [-count N] [-all] [-o json]
//	nexus-admin keys status [-o json] [-http URL]   (what is sealed under each encryption key)
//	nexus-admin create [-f FILE | -name N -type T -issuer URL -client-id ID -client-secret-file FILE -scopes a,b -aliases x,y]
//	nexus-admin get REF
//	nexus-admin list [-type T] [-limit N] [-cursor C]
//	nexus-admin update REF [-f FILE]     (a JSON merge patch; stdin without -f)
//	nexus-admin delete REF
//	nexus-admin audit [-since T] [-until T] [-principal P] [-key-id K] [-target T] [-workspace W] [-action A] [-limit N] [-cursor C] [-json]
//
// apply, connections, events and keys speak NATS unless -http names admin's
// HTTP API (events are NATS only): NATS_URL, as the operator's NATS user
// (NATS_USER, default operator; NATS_PASSWORD or NATS_OPERATOR_PASSWORD).
// create, get, list, update, delete and audit use the HTTP API at ADMIN_URL
// (http://127.0.0.1:8081) and print replies as JSON; REF is a provider id,
// name or alias, and documents are read from -f or stdin. Every request
// carries ADMIN_API_KEY (the first key of a comma-separated list). Pass
// client secrets in a file, an environment variable or on stdin, never as
// an argument (arguments are visible to every user of the machine).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/run/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: nexus-admin <command> [flags]
  apply -f DIR|FILE [-prune] [-dry-run]
                              make the providers what the documents say (YAML or JSON, one provider or a
                              list per document; client_secret: {env: NAME} or {file: PATH}, never inline);
                              prints the plan; exit 0 when nothing changed, 2 when something did (would,
                              with -dry-run), 1 on error; -prune deletes the providers no document names
  connections list [-workspace W] [-provider P] [-status S] [-limit N] [-cursor C]
  connections get ID [-workspace W]
  connections revoke ID [-workspace W]
                              connections of every workspace (no token material); revoke wipes the
                              secrets and revokes at the provider where it can
  events tail [-durable NAME] [-count N] [-all]
                              follow NEXUS_EVENTS (connection and provider events) until interrupted, or
                              for N events: an ephemeral consumer from now (-all: from the oldest), or
                              the durable consumer NAME (NATS lets the operator user have "operator")
  keys status                 what the vault has sealed under each encryption key, its running replicas,
                              and whether a key rotation is complete (rotation_complete)
    these four: -o json for JSON (events: one per line) instead of a table; over NATS unless
    -http URL names admin's HTTP API (not for events)
  create [-f FILE]            register a provider (JSON document from FILE or stdin, or the flags below)
         [-name N -type T -issuer URL -client-id ID -client-secret-file FILE -scopes a,b -aliases x,y]
  get REF                     show a provider (REF: id, name or alias)
  list [-type T] [-limit N] [-cursor C]
  update REF [-f FILE]        apply a JSON merge patch (from FILE or stdin)
  delete REF                  remove a provider
  audit [-since T] [-until T] [-principal P] [-key-id K] [-target T] [-workspace W] [-action A] [-limit N] [-cursor C] [-json]
                              who asked for what, newest first: credential releases, consents, revocations,
                              provider changes (T: an RFC 3339 time, or a duration before now such as 1h)
  -version                    print the version and Go build information
environment: ADMIN_API_KEY; NATS_URL (default nats://127.0.0.1:4222), NATS_USER (operator), NATS_PASSWORD
  or NATS_OPERATOR_PASSWORD, NATS_CA_FILE, NATS_CERT_FILE, NATS_KEY_FILE; ADMIN_URL (default
  http://127.0.0.1:8081) for create, get, list, update, delete and audit
`

// cli is one invocation.
type cli struct {
	base   string
	key    string
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	http   *http.Client
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprint(stdout, buildinfo.Text("nexus-admin"))
		return 0
	}
	base := getenv("ADMIN_URL")
	if base == "" {
		base = "http://127.0.0.1:8081"
	}
	key, _, _ := strings.Cut(getenv("ADMIN_API_KEY"), ",")
	c := &cli{base: strings.TrimSuffix(base, "/"), key: strings.TrimSpace(key), getenv: getenv, stdin: stdin, stdout: stdout,
		http: &http.Client{Timeout: 30 * time.Second}}
	// apply answers 2 when it changed something, so its usage errors are 1.
	usageExit := 2
	if args[0] == "apply" {
		usageExit = 1
	}
	if c.key == "" {
		fmt.Fprintln(stderr, "nexus-admin: ADMIN_API_KEY is required (an operator's key)")
		return usageExit
	}
	err := c.dispatch(ctx, args[0], args[1:], stderr)
	var e *messages.Error
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errChanged):
		return exitChanged
	case errors.Is(err, flag.ErrHelp):
		return usageExit
	case errors.As(err, &e) && err == error(e):
		fmt.Fprintf(stderr, "nexus-admin: %s: %s\n", e.Code, e.Message)
	default:
		fmt.Fprintln(stderr, "nexus-admin:", err)
	}
	return 1
}

func (c *cli) dispatch(ctx context.Context, cmd string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "read the JSON document from this file instead of stdin")
	switch cmd {
	case "create":
		var p messages.Provider
		var typ, scopes, aliases, secretFile string
		fs.StringVar(&p.Name, "name", "", "provider name")
		fs.StringVar(&typ, "type", "", "oidc, oauth2 or static")
		fs.StringVar(&p.Issuer, "issuer", "", "OIDC issuer URL")
		fs.StringVar(&p.ClientID, "client-id", "", "OAuth client id")
		fs.StringVar(&secretFile, "client-secret-file", "", "file holding the OAuth client secret")
		fs.StringVar(&scopes, "scopes", "", "comma-separated default scopes")
		fs.StringVar(&aliases, "aliases", "", "comma-separated aliases")
		if err := fs.Parse(args); err != nil {
			return err
		}
		var body []byte
		if p.Name == "" && typ == "" {
			b, err := c.document(*file)
			if err != nil {
				return err
			}
			body = b
		} else {
			p.Type, p.Scopes, p.Aliases = messages.ProviderType(typ), split(scopes), split(aliases)
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return err
				}
				p.ClientSecret = strings.TrimSpace(string(b))
			}
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			body = b
		}
		return c.do(ctx, http.MethodPost, "/v1/providers", "application/json", body)
	case "get", "delete":
		if err := fs.Parse(args); err != nil {
			return err
		}
		ref, err := oneRef(fs)
		if err != nil {
			return err
		}
		method := map[string]string{"get": http.MethodGet, "delete": http.MethodDelete}[cmd]
		return c.do(ctx, method, "/v1/providers/"+url.PathEscape(ref), "", nil)
	case "list":
		typ := fs.String("type", "", "only providers of this type")
		limit := fs.Int("limit", 0, "page size (default 50, at most 500)")
		cursor := fs.String("cursor", "", "next_cursor of the previous page")
		if err := fs.Parse(args); err != nil {
			return err
		}
		q := url.Values{}
		if *typ != "" {
			q.Set("type", *typ)
		}
		if *limit != 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		if *cursor != "" {
			q.Set("cursor", *cursor)
		}
		path := "/v1/providers"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		return c.do(ctx, http.MethodGet, path, "", nil)
	case "update":
		// REF comes first: parse the flags after it.
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return errors.New("update needs a provider id, name or alias")
		}
		ref := args[0]
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		body, err := c.document(*file)
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodPatch, "/v1/providers/"+url.PathEscape(ref), "application/merge-patch+json", body)
	case "audit":
		return c.audit(ctx, fs, args)
	case "apply":
		prune := fs.Bool("prune", false, "delete the providers no document names")
		dryRun := fs.Bool("dry-run", false, "print the plan only (exit 2 when it would change something)")
		httpURL := fs.String("http", "", "admin's HTTP API (http://127.0.0.1:8081) instead of NATS")
		if _, err := parseAll(fs, args, 0); err != nil {
			return err
		}
		if *file == "" {
			return errors.New("apply needs -f: a document file, or a directory of them")
		}
		return c.withAPI(*httpURL, func(a api) error { return c.apply(ctx, a, *file, *prune, *dryRun) })
	case "connections":
		return c.connections(ctx, fs, args)
	case "events":
		return c.events(ctx, fs, args)
	case "keys":
		return c.keys(ctx, fs, args)
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// document reads a JSON document from file, or stdin when file is empty.
func (c *cli) document(file string) ([]byte, error) {
	if file != "" {
		return os.ReadFile(file)
	}
	return io.ReadAll(io.LimitReader(c.stdin, 1<<20))
}

// do sends one request and prints the reply, or returns the API's error.
func (c *cli) do(ctx context.Context, method, path, contentType string, body []byte) error {
	data, err := c.fetch(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		_, err = c.stdout.Write(data)
		return err
	}
	_, err = fmt.Fprintln(c.stdout, out.String())
	return err
}

// fetch sends one request and returns the reply's body, or the API's error.
func (c *cli) fetch(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var eb messages.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			return nil, eb.Error
		}
		return nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	return data, nil
}

// parseAll parses flags wherever they are among the arguments (Go's flag
// package stops at the first argument that is not one) and returns the
// others, which must be exactly want of them (any number when want < 0).
func parseAll(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if want >= 0 && len(rest) != want {
		return nil, fmt.Errorf("%s takes %d argument(s) besides its flags, not %q", fs.Name(), want, rest)
	}
	return rest, nil
}

// withAPI runs fn against admin's HTTP API at httpURL, or over NATS when
// httpURL is empty.
func (c *cli) withAPI(httpURL string, fn func(api) error) error {
	if httpURL != "" {
		h := *c
		h.base = strings.TrimSuffix(httpURL, "/")
		return fn(httpAPI{c: &h})
	}
	nc, err := connectNATS(c.getenv)
	if err != nil {
		return err
	}
	defer nc.Close()
	return fn(natsAPI{client: &natsx.Client{NC: nc, Prefix: c.getenv("NEXUS_SUBJECT_PREFIX"), APIKey: c.key}})
}

func oneRef(fs *flag.FlagSet) (string, error) {
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s needs exactly one provider id, name or alias", fs.Name())
	}
	return fs.Arg(0), nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
