package config

import (
	"github.com/nexus-broker/nexus/messages"
)

// Common is the configuration every service reads.
type Common struct {
	NATSURL   string // NATS_URL
	Prefix    string // NEXUS_SUBJECT_PREFIX, "nexus" by default
	HTTPAddr  string // HTTP_ADDR: /healthz, /readyz, /metrics and the service's own routes
	LogLevel  string // LOG_LEVEL
	LogFormat string // LOG_FORMAT: json or text
	// TLS to NATS (tls:// URLs, or a server that requires it): the CA that
	// signed the servers' certificates (NATS_CA_FILE; the system's roots
	// when unset) and this service's client certificate and key
	// (NATS_CERT_FILE, NATS_KEY_FILE), for servers that verify clients.
	NATSCAFile, NATSCertFile, NATSKeyFile string
	// Telemetry is where traces go (OTEL_*); off when unset.
	Telemetry Telemetry
}

// Common reads the variables every service needs. httpAddr is the service's
// default listen address.
func (l *Loader) Common(httpAddr string) Common {
	c := Common{
		NATSURL:   l.String("NATS_URL", "nats://127.0.0.1:4222"),
		Prefix:    l.String("NEXUS_SUBJECT_PREFIX", messages.DefaultPrefix),
		HTTPAddr:  l.String("HTTP_ADDR", httpAddr),
		LogLevel:  l.String("LOG_LEVEL", "info"),
		LogFormat: l.String("LOG_FORMAT", "json"),
	}
	for _, p := range NATSURLProblems(c.NATSURL) {
		l.Problem("NATS_URL", "%s", p)
	}
	c.NATSCAFile = l.File("NATS_CA_FILE")
	c.NATSCertFile, c.NATSKeyFile = l.File("NATS_CERT_FILE"), l.File("NATS_KEY_FILE")
	if (c.NATSCertFile == "") != (c.NATSKeyFile == "") {
		l.Problem("NATS_CERT_FILE", "and NATS_KEY_FILE go together: a client certificate needs its key")
	}
	c.Telemetry = l.Telemetry()
	return c
}

// RedactedNATSURL is NATS_URL with any password replaced, for logs and errors.
func (c Common) RedactedNATSURL() string { return RedactURL(c.NATSURL) }
