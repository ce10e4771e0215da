package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the endpoint's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	connections prometheus.Gauge
	refusedConn *prometheus.CounterVec
	received    *prometheus.CounterVec
	acked       *prometheus.CounterVec
	refused     *prometheus.CounterVec
	// Reason names why the Handler refused a message, for the refused
	// counter's reason label (a small fixed set: "throttled", …); nil or
	// "" gives "handler".
	Reason func(error) string
}

// NewMetrics registers the MQTT metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outpost_mqtt_connections", Help: "Admitted MQTT device connections (TLS and WebSocket), on this node.",
		}),
		refusedConn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_mqtt_connections_refused_total",
			Help: "MQTT connection attempts refused, by CONNACK return code (0 when closed before CONNECT: too many pending).",
		}, []string{"code"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_mqtt_publishes_received_total", Help: "PUBLISH packets received from devices, by kind (telemetry, twin_get, twin_reported, method_response).",
		}, []string{"kind"}),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_mqtt_publishes_acknowledged_total", Help: "QoS 1 PUBLISH packets acknowledged (PUBACK sent), by kind.",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_mqtt_publishes_refused_total",
			Help: "PUBLISH packets not acknowledged, by reason (throttled, handler: not stored, too_large, protocol, draining, skipped: after a refused one).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.connections, m.refusedConn, m.received, m.acked, m.refused)
	return m
}

func (m *Metrics) conn(delta float64) {
	if m != nil {
		m.connections.Add(delta)
	}
}

func (m *Metrics) connRefused(code byte) {
	if m != nil {
		m.refusedConn.WithLabelValues(connackLabel(code)).Inc()
	}
}

// connackNone labels a connection closed before its CONNECT could be answered.
const connackNone byte = 0xff

func connackLabel(code byte) string {
	if code == connackNone {
		return "none"
	}
	return string('0' + rune(code))
}

func (m *Metrics) publishReceived(k publishKind) {
	if m != nil {
		m.received.WithLabelValues(k.String()).Inc()
	}
}

func (m *Metrics) publishAcked(k publishKind) {
	if m != nil {
		m.acked.WithLabelValues(k.String()).Inc()
	}
}

func (m *Metrics) publishRefused(reason string, n int) {
	if m != nil && n > 0 {
		m.refused.WithLabelValues(reason).Add(float64(n))
	}
}

// handlerRefused counts a message the Handler did not accept.
func (m *Metrics) handlerRefused(err error) {
	if m == nil {
		return
	}
	reason := ""
	if m.Reason != nil {
		reason = m.Reason(err)
	}
	if reason == "" {
		reason = "handler"
	}
	m.refused.WithLabelValues(reason).Inc()
}

// String names the kind in metric labels.
func (k publishKind) String() string {
	switch k {
	case pubTelemetry:
		return "telemetry"
	case pubTwinGet:
		return "twin_get"
	case pubTwinReported:
		return "twin_reported"
	case pubMethodResponse:
		return "method_response"
	}
	return "other"
}
