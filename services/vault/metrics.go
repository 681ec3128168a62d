package vault

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/services/vault/internal/provider"
)

// refreshMetrics count the vault's refreshes at providers and time them, by
// provider id and outcome: labels an operator's registrations and the
// broker's own words bound, never a connection or a workspace.
type refreshMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// Refresh outcomes: ok, or what the failure means (provider.Kind). A call
// the guard held back (breaker open, too many in flight) is transient.
var refreshOutcomes = map[provider.Kind]string{
	provider.Transient:      "transient",
	provider.Permanent:      "permanent",
	provider.Rejected:       "rejected",
	provider.InvalidIDToken: "invalid_id_token",
	provider.Misconfigured:  "misconfigured",
}

func newRefreshMetrics(reg prometheus.Registerer) (*refreshMetrics, error) {
	m := &refreshMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_vault_provider_refreshes_total",
			Help: "Refresh token grants the vault sent to a provider (or the guard held back), by provider id and outcome: ok, transient, permanent (the grant is gone: attention_required), rejected, invalid_id_token, misconfigured, error.",
		}, []string{"provider_id", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_vault_provider_refresh_duration_seconds",
			Help:    "Time of a refresh token grant at the provider, guard included, by provider id.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"provider_id"}),
	}
	for _, c := range []prometheus.Collector{m.total, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one refresh of providerID that began at start.
func (m *refreshMetrics) observe(providerID string, start time.Time, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(providerID).Observe(time.Since(start).Seconds())
	m.total.WithLabelValues(providerID, refreshOutcome(err)).Inc()
}

func refreshOutcome(err error) string {
	var pe *provider.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &pe) && refreshOutcomes[pe.Kind] != "":
		return refreshOutcomes[pe.Kind]
	default:
		return "error"
	}
}
