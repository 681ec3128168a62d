// Package system runs every Nexus Broker service in one process: the
// all-in-one launcher behind `make run`, the end-to-end tests and the
// benchmark all start the broker through Start.
package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/telemetry"
)

// Lookup reads one configuration variable, like os.LookupEnv.
type Lookup func(string) (string, bool)

// Overlay returns a lookup that answers from m first, then from base.
func Overlay(base Lookup, m map[string]string) Lookup {
	return func(k string) (string, bool) {
		if v, ok := m[k]; ok {
			return v, true
		}
		if base == nil {
			return "", false
		}
		return base(k)
	}
}

// System is a running broker: vault, admin, handshake and refresher, each with its own
// NATS connection and HTTP listener, as if they were separate processes.
type System struct {
	Vault     *vault.Service
	Admin     *admin.Service
	Handshake *handshake.Service
	Refresher *refresher.Service

	// HTTP listeners, by service name.
	Listeners map[string]net.Listener

	cancel     context.CancelFunc
	wg         sync.WaitGroup
	log        *slog.Logger
	endTracing func(context.Context) error
}

// Start validates every service's configuration at once (each service reads
// only its own variables from env; HTTP_ADDR and INTERNAL_HTTP_ADDR are
// refused, see CheckEnv), then starts vault, admin, handshake and
// refresher in that order and serves their HTTP handlers on the listeners given (or on
// VAULT_HTTP_ADDR, ADMIN_HTTP_ADDR, HANDSHAKE_HTTP_ADDR,
// HANDSHAKE_INTERNAL_HTTP_ADDR and REFRESHER_HTTP_ADDR when a listener is nil).
func Start(ctx context.Context, env Lookup, listeners map[string]net.Listener, log *slog.Logger) (*System, error) {
	l := config.FromFunc(env)
	vcfg := vault.LoadConfig(l)
	acfg := admin.LoadConfig(l)
	hcfg := handshake.LoadConfig(l)
	rcfg := refresher.LoadConfig(l)
	if err := errors.Join(CheckEnv(env), l.Err()); err != nil {
		return nil, err
	}
	// Each binary reads HTTP_ADDR; in one process each needs its own port.
	addr := map[string]string{}
	for _, a := range listenAddrs {
		addr[a.listener] = envOr(env, a.env, a.def)
	}
	vcfg.HTTPAddr, acfg.HTTPAddr, rcfg.HTTPAddr = addr["vault"], addr["admin"], addr["refresher"]
	hcfg.HTTPAddr, hcfg.InternalHTTPAddr = addr["handshake"], addr["handshake-internal"]
	// Each binary connects to NATS as its own user; in one process, each
	// service gets its user and password (NATS_<USER>_PASSWORD) into its URL.
	for _, c := range []struct {
		url  *string
		user string
	}{{&vcfg.NATSURL, natsauth.Vault}, {&acfg.NATSURL, natsauth.Admin}, {&hcfg.NATSURL, natsauth.Handshake}, {&rcfg.NATSURL, natsauth.Refresher}} {
		if pw := envOr(env, NATSPasswordVar(c.user), ""); pw != "" {
			*c.url = WithNATSUser(*c.url, c.user, pw)
		}
	}

	// One process, one tracer provider (OTEL_*; off when unset), shared by
	// the four services: their spans say which (nexus.service).
	endTracing, err := telemetry.Setup(ctx, vcfg.Telemetry, "nexus")
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &System{cancel: cancel, log: log, Listeners: map[string]net.Listener{}, endTracing: endTracing}
	if s.Vault, err = vault.Start(ctx, vcfg, log.With("service", "vault")); err != nil {
		return nil, s.fail(fmt.Errorf("vault: %w", err))
	}
	if s.Admin, err = admin.Start(ctx, acfg, log.With("service", "admin")); err != nil {
		return nil, s.fail(fmt.Errorf("admin: %w", err))
	}
	if s.Handshake, err = handshake.Start(ctx, hcfg, log.With("service", "handshake")); err != nil {
		return nil, s.fail(fmt.Errorf("handshake: %w", err))
	}
	if s.Refresher, err = refresher.Start(ctx, rcfg, log.With("service", "refresher")); err != nil {
		return nil, s.fail(fmt.Errorf("refresher: %w", err))
	}
	for _, svc := range []struct {
		name    string
		addr    string
		handler http.Handler
	}{
		{"vault", vcfg.HTTPAddr, s.Vault.Handler()},
		{"admin", acfg.HTTPAddr, s.Admin.Handler()},
		{"handshake", hcfg.HTTPAddr, s.Handshake.Handler()},
		{"handshake-internal", hcfg.InternalHTTPAddr, s.Handshake.InternalHandler()},
		{"refresher", rcfg.HTTPAddr, s.Refresher.Handler()},
	} {
		ln := listeners[svc.name]
		if ln == nil {
			if ln, err = net.Listen("tcp", svc.addr); err != nil {
				return nil, s.fail(fmt.Errorf("%s: listen on %s: %w", svc.name, svc.addr, err))
			}
		}
		s.Listeners[svc.name] = ln
		s.wg.Add(1)
		go func(name string, ln net.Listener, h http.Handler) {
			defer s.wg.Done()
			if err := httpserver.Serve(runCtx, ln, h, log.With("service", name)); err != nil {
				log.Error("http server stopped", "service", name, "err", err)
			}
		}(svc.name, ln, svc.handler)
	}
	return s, nil
}

// WithNATSUser puts user and password into every server URL of list.
func WithNATSUser(list, user, password string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Host == "" {
			continue // the service reports it, without the password
		}
		u.User = url.UserPassword(user, password)
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

func envOr(env Lookup, k, def string) string {
	if v, ok := env(k); ok && v != "" {
		return v
	}
	return def
}

func (s *System) fail(err error) error {
	return errors.Join(err, s.Close(context.Background()))
}

// Close stops the HTTP servers, then the services in reverse order, then
// sends the spans not yet sent.
func (s *System) Close(ctx context.Context) error {
	s.cancel() // Serve shuts each HTTP server down and closes its listener.
	s.wg.Wait()
	var errs []error
	if s.Refresher != nil {
		errs = append(errs, s.Refresher.Close(ctx))
	}
	if s.Handshake != nil {
		errs = append(errs, s.Handshake.Close(ctx))
	}
	if s.Admin != nil {
		errs = append(errs, s.Admin.Close(ctx))
	}
	if s.Vault != nil {
		errs = append(errs, s.Vault.Close(ctx))
	}
	if s.endTracing != nil {
		errs = append(errs, s.endTracing(ctx))
	}
	return errors.Join(errs...)
}
