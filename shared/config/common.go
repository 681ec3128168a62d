package config

import (
	"github.com/nexus-broker/nexus/messages"
)

// Common is the configuration every service reads.
type Common struct {
	NATSURL   string   // NATS_URL
	Prefix    string   // NEXUS_SUBJECT_PREFIX, "nexus" by default
	APIKeys   []string // API_KEY: one key, or several separated by commas during a rotation
	HTTPAddr  string   // HTTP_ADDR: /healthz, /readyz, /metrics and the service's own routes
	LogLevel  string   // LOG_LEVEL
	LogFormat string   // LOG_FORMAT: json or text
}

// Common reads the variables every service needs. httpAddr is the service's
// default listen address.
func (l *Loader) Common(httpAddr string) Common {
	c := Common{
		NATSURL:   l.String("NATS_URL", "nats://127.0.0.1:4222"),
		Prefix:    l.String("NEXUS_SUBJECT_PREFIX", messages.DefaultPrefix),
		APIKeys:   l.List("API_KEY", nil),
		HTTPAddr:  l.String("HTTP_ADDR", httpAddr),
		LogLevel:  l.String("LOG_LEVEL", "info"),
		LogFormat: l.String("LOG_FORMAT", "json"),
	}
	for _, p := range NATSURLProblems(c.NATSURL) {
		l.Problem("NATS_URL", "%s", p)
	}
	if len(c.APIKeys) == 0 {
		l.Problem("API_KEY", "is required (the key the Gateway and operators present; several, comma-separated, during a rotation)")
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			l.Problem("API_KEY", "every key must be at least 16 characters")
			break
		}
	}
	return c
}

// RedactedNATSURL is NATS_URL with any password replaced, for logs and errors.
func (c Common) RedactedNATSURL() string { return RedactURL(c.NATSURL) }
