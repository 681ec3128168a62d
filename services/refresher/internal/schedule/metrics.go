package schedule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
)

// Outcomes beyond the vault's own (messages.RefreshOutcome).
const (
	// OutcomeError: the vault answered with an error. The lease runs out
	// and a later claim returns the connection again.
	OutcomeError = "error"
	// OutcomeNoAnswer: the vault did not answer (a timeout, no responders);
	// the connection is deferred to a short retry.
	OutcomeNoAnswer = "no_answer"
	// OutcomeLeaseExpired: the item waited for a worker so long that its lease
	// ran out; another replica may have claimed it, so it is left alone.
	OutcomeLeaseExpired = "lease_expired"
)

// Metrics are the schedule's Prometheus collectors.
type Metrics struct {
	Outcomes    *prometheus.CounterVec
	Duration    *prometheus.HistogramVec
	Backoff     prometheus.Histogram
	Claimed     prometheus.Counter
	VaultErrors *prometheus.CounterVec
}

// NewMetrics builds the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_refresher_refresh_outcomes_total",
			Help: "Background refresh runs by outcome: refreshed, not_needed, attention_required, transient, error, no_answer, lease_expired.",
		}, []string{"outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_refresher_refresh_run_duration_seconds",
			Help:    "Time of one refresh run at the vault (provider round trip included), by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		Backoff: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexus_refresher_backoff_delay_seconds",
			Help:    "Delay before the next attempt after a transient refresh failure (Retry-After honoured).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 600, 1800, 3600},
		}),
		Claimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_refresher_refresh_claimed_total",
			Help: "Connections leased from the vault for a refresh.",
		}),
		VaultErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_refresher_vault_errors_total",
			Help: "Refresh calls to the vault that failed or were not answered, by call (claim, run, defer).",
		}, []string{"call"}),
	}
	for _, o := range []string{string(messages.RefreshDone), string(messages.RefreshNotNeeded), string(messages.RefreshAttention), string(messages.RefreshTransient), OutcomeError, OutcomeLeaseExpired} {
		m.Outcomes.WithLabelValues(o)
		m.Duration.WithLabelValues(o)
	}
	for _, c := range []string{"claim", "run", "defer"} {
		m.VaultErrors.WithLabelValues(c)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Outcomes, m.Duration, m.Backoff, m.Claimed, m.VaultErrors} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
