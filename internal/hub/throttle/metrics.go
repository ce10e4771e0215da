package throttle

import (
	"github.com/prometheus/client_golang/prometheus"
)

// NewMetrics registers the throttle metrics on reg and returns the refusal
// counter New takes. Every kind is exported at 0 from the start, so an
// alert on the rate of refusals has a series to look at.
func NewMetrics(reg prometheus.Registerer) func(Kind) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_throttled_total",
		Help: "Requests and messages refused by an IoT Hub throttle (429 ThrottlingException), by kind: d2c, device_d2c, registry, twin_read, twin_update, method.",
	}, []string{"kind"})
	for _, k := range Kinds {
		refused.WithLabelValues(string(k))
	}
	reg.MustRegister(refused)
	return func(k Kind) { refused.WithLabelValues(string(k)).Inc() }
}

// RegisterNodes exports the live node count the per-hub rates are shared
// among (outpost_cluster_nodes).
func RegisterNodes(reg prometheus.Registerer, l *Limiter) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_cluster_nodes", Help: "Live nodes of the installation as this node counts them (per-hub throttles give each an equal share).",
	}, func() float64 { return float64(l.Nodes()) }))
}
