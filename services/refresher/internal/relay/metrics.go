package relay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
)

// Metrics are the relay's Prometheus collectors.
type Metrics struct {
	Published  *prometheus.CounterVec
	Duplicates prometheus.Counter
	Errors     *prometheus.CounterVec
}

// NewMetrics builds the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_refresher_events_published_total",
			Help: "Lifecycle events JetStream acknowledged, by event type (duplicates included).",
		}, []string{"type"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_refresher_events_duplicate_total",
			Help: "Re-published events that JetStream dropped as duplicates (Nats-Msg-Id seen within the duplicate window).",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_refresher_relay_errors_total",
			Help: "Outbox relay failures by stage: claim, publish, ack, invalid (an event the relay cannot route).",
		}, []string{"stage"}),
	}
	for _, t := range messages.EventTypes {
		m.Published.WithLabelValues(string(t))
	}
	for _, s := range []string{"claim", "publish", "ack", "invalid"} {
		m.Errors.WithLabelValues(s)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Published, m.Duplicates, m.Errors} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
