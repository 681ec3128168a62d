package system

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
)

// DevDefaults are the values `make run` uses for what the environment does
// not set. PUBLIC_URL defaults to the handshake's own address (PublicURL).
// PROVIDER_PRIVATE_NETWORKS opens loopback, where development providers run
// (over plain http); in production it is empty unless set.
var DevDefaults = map[string]string{
	"DATABASE_URL":              DevDatabaseURL,
	"REDIS_URL":                 "redis://127.0.0.1:6379/0",
	"ALLOWED_RETURN_URLS":       "http://127.0.0.1:3000,http://localhost:3000",
	"LOG_FORMAT":                "text",
	"PROVIDER_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
}

// DevDatabaseURL is the development database, created on first use.
const DevDatabaseURL = "postgres://postgres@127.0.0.1:5432/nexus?sslmode=disable"

// Under `make run` every service shares one process, so each listens on an
// address of its own, set by its own variable.
type listenAddr struct {
	listener string // key of System.Listeners
	env      string
	def      string
}

var listenAddrs = []listenAddr{
	{"handshake", "HANDSHAKE_HTTP_ADDR", "127.0.0.1:8080"},
	{"handshake-internal", "HANDSHAKE_INTERNAL_HTTP_ADDR", "127.0.0.1:9080"},
	{"admin", "ADMIN_HTTP_ADDR", "127.0.0.1:8081"},
	{"vault", "VAULT_HTTP_ADDR", "127.0.0.1:8082"},
	{"refresher", "REFRESHER_HTTP_ADDR", "127.0.0.1:8083"},
}

// The embedded NATS server of `make run` listens on 127.0.0.1 at
// NEXUS_NATS_PORT (4222 is left to a NATS the machine may run itself).
const (
	NATSPortVar     = "NEXUS_NATS_PORT"
	DefaultNATSPort = 4322
)

// CheckEnv refuses the variables that have no meaning when every service
// shares one process: HTTP_ADDR and INTERNAL_HTTP_ADDR, which each service
// binary reads for itself. It names the variables to set instead.
func CheckEnv(env Lookup) error {
	var errs []error
	if v, ok := env("HTTP_ADDR"); ok && v != "" {
		var names []string
		for _, a := range listenAddrs {
			names = append(names, fmt.Sprintf("%s (default %s)", a.env, a.def))
		}
		errs = append(errs, fmt.Errorf("HTTP_ADDR=%q is set, but the all-in-one broker (make run) runs every service in one process, each on its own address: "+
			"unset HTTP_ADDR and set %s instead", v, strings.Join(names, ", ")))
	}
	if v, ok := env("INTERNAL_HTTP_ADDR"); ok && v != "" {
		errs = append(errs, fmt.Errorf("INTERNAL_HTTP_ADDR=%q is set, but in the all-in-one broker (make run) the handshake's internal listener is set by HANDSHAKE_INTERNAL_HTTP_ADDR (default 127.0.0.1:9080): "+
			"unset INTERNAL_HTTP_ADDR and set that instead", v))
	}
	return errors.Join(errs...)
}

// Preflight checks, before anything starts, what `make run` needs of the
// machine: CheckEnv, and that every port is free. It binds each service's
// HTTP address (HANDSHAKE_HTTP_ADDR and the others, or their defaults),
// returning the listeners for Start, and checks that the embedded NATS
// server's port (NEXUS_NATS_PORT) is free. When NEXUS_DEV_PROVIDER asks
// for the development provider, its address is checked and bound too
// (listeners[DevProviderListener], which Start does not use). Every
// problem is reported at once, naming the port and the variable that
// changes it; on error nothing stays bound.
func Preflight(env Lookup) (listeners map[string]net.Listener, natsPort int, err error) {
	var errs []error
	if err := CheckEnv(env); err != nil {
		errs = append(errs, err)
	}
	natsPort = DefaultNATSPort
	if v, ok := env(NATSPortVar); ok && v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s=%q: must be a port number, 1 to 65535", NATSPortVar, v))
			p = 0
		}
		natsPort = p
	}
	listeners = map[string]net.Listener{}
	seen := map[string]string{}
	for _, a := range listenAddrs {
		addr := envOr(env, a.env, a.def)
		if other, dup := seen[addr]; dup && !strings.HasSuffix(addr, ":0") {
			errs = append(errs, fmt.Errorf("%s and %s are both %s: give each service its own port", other, a.env, addr))
			continue
		}
		seen[addr] = a.env
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs = append(errs, listenError(a.env, addr, err))
			continue
		}
		listeners[a.listener] = ln
	}
	ln, devErrs := preflightDevProvider(env, seen)
	errs = append(errs, devErrs...)
	if ln != nil {
		listeners[DevProviderListener] = ln
	}
	if natsPort != 0 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(natsPort))
		if ln, err := net.Listen("tcp", addr); err != nil {
			errs = append(errs, listenError(NATSPortVar, addr, err))
		} else {
			ln.Close()
		}
	}
	if len(errs) > 0 {
		for _, ln := range listeners {
			ln.Close()
		}
		return nil, 0, errors.Join(errs...)
	}
	return listeners, natsPort, nil
}

// listenError says which port could not be bound and which variable moves it.
func listenError(name, addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("port %s is already in use (%s, %s; another make run?): stop what holds it, or choose another port, e.g. %s",
			port, name, addr, example(name, addr))
	}
	return fmt.Errorf("%s: cannot listen on %s: %w", name, addr, err)
}

// example is the variable set to another port, as a command line.
func example(name, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	alt := strconv.Itoa(p + 10000)
	if p+10000 > 65535 {
		alt = strconv.Itoa(p - 1)
	}
	if name == NATSPortVar {
		return name + "=" + alt + " make run"
	}
	return name + "=" + net.JoinHostPort(host, alt) + " make run"
}

// PublicURL is PUBLIC_URL's default: the handshake's own address,
// http://HANDSHAKE_HTTP_ADDR, with 127.0.0.1 for a host that is empty or
// unspecified (0.0.0.0, ::) and the port the listener got (for port 0).
func PublicURL(env Lookup, handshake net.Listener) string {
	host, _, err := net.SplitHostPort(envOr(env, "HANDSHAKE_HTTP_ADDR", "127.0.0.1:8080"))
	if ip := net.ParseIP(host); err != nil || host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(handshake.Addr().String())
	return "http://" + net.JoinHostPort(host, port)
}

// devSecret is a development secret: generated on first run when unset,
// kept in the data dir.
type devSecret struct {
	name   string
	prefix string // for keys a person types: says what it is
	raw    bool   // 32 bytes in standard base64 (ENCRYPTION_KEY, STATE_KEY)
}

// devSecrets are every key of every principal and every NATS password of
// the embedded server (the users of shared/natsauth), so that `make run`
// has the production's doors, not an open one.
var devSecrets = func() []devSecret {
	out := []devSecret{
		{name: "ENCRYPTION_KEY", raw: true},
		{name: "STATE_KEY", raw: true},
		{name: config.GatewayKeys, prefix: "nxk_gw_dev_"},
		{name: config.OperatorKeys, prefix: "nxk_op_dev_"},
		{name: config.HandshakeServiceKeys, prefix: "nxk_hs_dev_"},
		{name: config.AdminServiceKeys, prefix: "nxk_ad_dev_"},
		{name: config.RefresherServiceKeys, prefix: "nxk_rf_dev_"},
	}
	for _, u := range natsauth.Names {
		out = append(out, devSecret{name: NATSPasswordVar(u), prefix: "nats_dev_"})
	}
	return out
}()

// NATSPasswordVar is the variable holding a NATS user's password, as
// deploy/nats/users.conf reads it: NATS_<USER>_PASSWORD.
func NATSPasswordVar(user string) string { return "NATS_" + strings.ToUpper(user) + "_PASSWORD" }

// DevKeys returns the development keys and passwords: those in path, with
// any that are missing (a file from an older version) generated and added;
// or, when there is no file, all of them freshly generated and written
// there with mode 0600. With devProvider, the development provider's
// client secret (NEXUS_DEV_PROVIDER_CLIENT_SECRET) is one of them. created
// lists the names just made, so they can be printed once, the way `vault
// server -dev` prints its root token. ENCRYPTION_KEY is never replaced:
// the database is sealed with it; nor is any other line of the file lost.
func DevKeys(path string, devProvider bool) (keys map[string]string, created []string, err error) {
	keys, err = readEnvFile(path)
	if errors.Is(err, os.ErrNotExist) {
		keys, err = map[string]string{}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	secrets := devSecrets
	if devProvider {
		secrets = append(slices.Clip(secrets), devProviderSecret)
	}
	for _, d := range secrets {
		if keys[d.name] != "" {
			continue
		}
		if d.name == "ENCRYPTION_KEY" && len(keys) > 0 {
			return nil, nil, fmt.Errorf("%s: ENCRYPTION_KEY is missing; it seals the development database, so it is not made up again: restore it, or start over (rm -rf %s && dropdb -h 127.0.0.1 -U postgres nexus)", path, filepath.Dir(path))
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		if d.raw {
			keys[d.name] = base64.StdEncoding.EncodeToString(b)
		} else {
			keys[d.name] = d.prefix + base64.RawURLEncoding.EncodeToString(b)
		}
		created = append(created, d.name)
	}
	if len(created) == 0 {
		return keys, nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	var sb strings.Builder
	sb.WriteString("# Development keys and NATS passwords for `make run`, generated once. Never use these in production.\n")
	written := map[string]bool{}
	for _, d := range secrets {
		fmt.Fprintf(&sb, "%s=%s\n", d.name, keys[d.name])
		written[d.name] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !written[k] {
			fmt.Fprintf(&sb, "%s=%s\n", k, keys[k])
		}
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return nil, nil, err
	}
	return keys, created, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

// EnsureDatabase checks that the database url names answers. When it does
// not exist, EnsureDatabase creates it if create is set (for the
// development default, so `make run` works on a fresh machine), and
// otherwise fails naming DATABASE_URL: a database name set by hand that
// does not exist is far more often a typo than a wish for an empty
// database. Errors never carry the URL's password.
func EnsureDatabase(ctx context.Context, url string, create bool) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", redact(err, url))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	where := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return fmt.Errorf("PostgreSQL at %s (DATABASE_URL) does not answer: %w; start it, or set DATABASE_URL", where, redact(err, url))
	}
	name := cfg.Database
	if !create {
		return fmt.Errorf("DATABASE_URL names database %q, which does not exist on %s: create it (createdb -h %s -p %d -U %s %s), "+
			"or correct DATABASE_URL (unset, make run uses its own development database)", name, where, cfg.Host, cfg.Port, cfg.User, name)
	}
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s to create database %s: %w", where, name, redact(err, url))
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s on %s: %w", name, where, redact(err, url))
	}
	return nil
}

// redact replaces url's password in err's text, whatever the driver put there.
func redact(err error, url string) error {
	cfg, perr := pgconn.ParseConfig(url)
	if perr != nil || cfg.Password == "" || !strings.Contains(err.Error(), cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), cfg.Password, "[redacted]"))
}
