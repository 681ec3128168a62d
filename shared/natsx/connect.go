// Package natsx holds the NATS plumbing every service shares: connecting,
// building micro services whose endpoints check the API key and map errors to
// the contract, calling other services, and the embedded server used by the
// all-in-one launcher and the tests.
package natsx

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
)

// Connect dials NATS as service (vault, handshake, admin, refresher) with
// reconnects that never give up, logging state changes. Replies come to the
// service's own inbox prefix (_INBOX.<service>), the only inbox its NATS
// user may subscribe to (shared/natsauth). Its errors name the servers
// without their passwords or tokens: a server URL that does not parse is
// refused before the client (whose url.Parse error would quote it whole)
// sees it.
func Connect(url, service string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if problems := config.NATSURLProblems(url); len(problems) > 0 {
		return nil, fmt.Errorf("NATS server %s", strings.Join(problems, "; NATS server "))
	}
	base := []nats.Option{
		nats.Name("nexus-" + service),
		nats.CustomInboxPrefix(natsauth.InboxPrefix(service)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", config.RedactURL(c.ConnectedUrl())) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("nats async error", "subject", subj, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, config.HideSecrets(fmt.Errorf("connect to %s: %w", config.RedactURL(url), err), config.URLSecrets(url)...)
	}
	return nc, nil
}

// TLS is the client options NATS_CA_FILE, NATS_CERT_FILE and NATS_KEY_FILE
// ask for (none when unset: a tls:// URL then verifies the server against
// the system's roots).
func TLS(c config.Common) []nats.Option {
	var opts []nats.Option
	if c.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.NATSCAFile))
	}
	if c.NATSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.NATSCertFile, c.NATSKeyFile))
	}
	return opts
}

// Drain drains the connection and waits until it is closed or ctx ends.
func Drain(ctx context.Context, nc *nats.Conn) {
	if nc == nil || nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		nc.Close()
	}
}

// Ready is a readiness check: nil while nc is connected.
func Ready(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("nats is %s", st)
		}
		return nil
	}
}
