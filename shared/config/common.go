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
	return c
}

// RedactedNATSURL is NATS_URL with any password replaced, for logs and errors.
func (c Common) RedactedNATSURL() string { return RedactURL(c.NATSURL) }
