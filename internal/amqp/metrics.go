package amqp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Metrics are the AMQP server's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	connections prometheus.Gauge
	links       *prometheus.GaugeVec
	deliveries  *prometheus.CounterVec
	refusals    *prometheus.CounterVec
}

// NewMetrics registers the AMQP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outpost_amqp_connections", Help: "Open AMQP connections (TLS and WebSocket).",
		}),
		links: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outpost_amqp_links", Help: "Attached AMQP links, by the client's role (sender: the client sends).",
		}, []string{"role"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_amqp_deliveries_total", Help: "AMQP deliveries, by direction (in: from clients) and outcome (in only: accepted, rejected, other).",
		}, []string{"direction", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_amqp_refusals_total", Help: "Attaches refused and links and connections closed with an error, by AMQP condition.",
		}, []string{"condition"}),
	}
	reg.MustRegister(m.connections, m.links, m.deliveries, m.refusals)
	return m
}

func (m *Metrics) conn(delta float64) {
	if m != nil {
		m.connections.Add(delta)
	}
}

func (m *Metrics) link(clientSends bool, delta float64) {
	if m == nil {
		return
	}
	role := "receiver"
	if clientSends {
		role = "sender"
	}
	m.links.WithLabelValues(role).Add(delta)
}

func (m *Metrics) delivered(in bool, state any) {
	if m == nil {
		return
	}
	if !in {
		m.deliveries.WithLabelValues("out", "").Inc()
		return
	}
	outcome := "other"
	switch state.(type) {
	case *wire.Accepted:
		outcome = "accepted"
	case *wire.Rejected:
		outcome = "rejected"
	}
	m.deliveries.WithLabelValues("in", outcome).Inc()
}

func (m *Metrics) refused(condition string) {
	if m != nil {
		m.refusals.WithLabelValues(condition).Inc()
	}
}
