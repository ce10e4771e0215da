package app

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/routing/engine"
)

// routingMetricsView is GET /outpost/iothubs/{hub}/routing/metrics: the
// hub's routing history on this node, oldest bucket first, the last one
// still filling. In a multi-node installation each node reports its own.
type routingMetricsView struct {
	BucketSeconds float64             `json:"bucketSeconds"`
	Buckets       []routingBucketView `json:"buckets"`
}

type routingBucketView struct {
	Start     string                            `json:"start"`
	Endpoints map[string]engine.EndpointMetrics `json:"endpoints"`
	Routes    map[string]int64                  `json:"routes"`
}

// routingMetrics answers with a hub's routing history. Reading it needs
// what reading the hub needs (Reader on the hub or above): it holds
// counts and health, no message content or keys.
func (a *App) routingMetrics(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer, name string) error {
	h, ok, err := a.hub.hubs.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if !ok {
		return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No IoT hub named '%s'.", name)
	}
	if err := authz.decide(p, "Microsoft.Devices/IotHubs/read", h.ResourceID); err != nil {
		return err
	}
	out := routingMetricsView{Buckets: []routingBucketView{}}
	m, known := a.hub.routing.Metrics(h.Name)
	if !known {
		// The router has not started for the hub yet: no history.
		m.Bucket = a.cfg.Hub.RoutingMetricsBucket
	}
	out.BucketSeconds = m.Bucket.Seconds()
	for _, b := range m.Buckets {
		out.Buckets = append(out.Buckets, routingBucketView{Start: b.Start.UTC().Format(time.RFC3339), Endpoints: b.Endpoints, Routes: b.Routes})
	}
	return writeJSON(w, http.StatusOK, out)
}

// routingCollector exports the routing engine's per-hub counters and
// per-endpoint health on /metrics, read at scrape time (the engine keeps
// them anyway; nothing is counted twice).
type routingCollector struct{ e routingState }

// routingState is what the collector reads of the engine.
type routingState interface {
	Hubs() []string
	Stats(hub string) engine.Stats
	Health(hub string) []engine.EndpointHealth
	TokenRequestCounts() []engine.TokenRequestCount
}

var (
	routingMessagesDesc = prometheus.NewDesc("outpost_routing_messages_total",
		"Device messages the hub's router handled on this node, by outcome: routed (copies to custom endpoints), builtin (copies to the built-in endpoint), fallback, unrouted (dropped: no route, no fallback).",
		[]string{"hub", "outcome"}, nil)
	routingDeliveredDesc = prometheus.NewDesc("outpost_routing_endpoint_delivered_total",
		"Messages delivered to a custom routing endpoint from this node.", []string{"hub", "endpoint"}, nil)
	routingFailedDesc = prometheus.NewDesc("outpost_routing_endpoint_failed_total",
		"Failed send attempts to a custom routing endpoint from this node (a failed batch is one attempt; it is retried).", []string{"hub", "endpoint"}, nil)
	routingFailingDesc = prometheus.NewDesc("outpost_routing_endpoint_failures_in_a_row",
		"Failed send attempts in a row to a routing endpoint (0 once a send succeeds).", []string{"hub", "endpoint"}, nil)
	routingHealthDesc = prometheus.NewDesc("outpost_routing_endpoint_health",
		"1 for a routing endpoint's current health status (healthy, degraded, unhealthy, dead, unknown), 0 for the others.", []string{"hub", "endpoint", "status"}, nil)
	routingTokenRequestsDesc = prometheus.NewDesc("outpost_routing_token_requests_total",
		"Managed identity tokens the router asked the issuer for on this node, by hub, identity (system, or the user-assigned identity's lower-case resource id) and audience; tokens are cached until shortly before they expire.",
		[]string{"hub", "identity", "audience"}, nil)
)

var routingStatuses = []string{engine.StatusHealthy, engine.StatusDegraded, engine.StatusUnhealthy, engine.StatusDead, engine.StatusUnknown}

func (c routingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{routingMessagesDesc, routingDeliveredDesc, routingFailedDesc, routingFailingDesc, routingHealthDesc, routingTokenRequestsDesc} {
		ch <- d
	}
}

func (c routingCollector) Collect(ch chan<- prometheus.Metric) {
	for _, hub := range c.e.Hubs() {
		st := c.e.Stats(hub)
		for outcome, v := range map[string]int64{"routed": st.Routed, "builtin": st.BuiltIn, "fallback": st.Fallback, "unrouted": st.Unrouted} {
			ch <- prometheus.MustNewConstMetric(routingMessagesDesc, prometheus.CounterValue, float64(v), hub, outcome)
		}
		for _, ep := range c.e.Health(hub) {
			if ep.Name == engine.BuiltInEndpoint {
				continue // always healthy: the hub's own stream
			}
			ch <- prometheus.MustNewConstMetric(routingDeliveredDesc, prometheus.CounterValue, float64(ep.Delivered), hub, ep.Name)
			ch <- prometheus.MustNewConstMetric(routingFailedDesc, prometheus.CounterValue, float64(ep.Failed), hub, ep.Name)
			ch <- prometheus.MustNewConstMetric(routingFailingDesc, prometheus.GaugeValue, float64(ep.Attempts), hub, ep.Name)
			for _, s := range routingStatuses {
				v := 0.0
				if ep.Status == s {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(routingHealthDesc, prometheus.GaugeValue, v, hub, ep.Name, s)
			}
		}
	}
	for _, tc := range c.e.TokenRequestCounts() {
		hub := tc.HubResourceID[strings.LastIndexByte(tc.HubResourceID, '/')+1:]
		identity := tc.UserAssigned
		if identity == "" {
			identity = "system"
		}
		ch <- prometheus.MustNewConstMetric(routingTokenRequestsDesc, prometheus.CounterValue, float64(tc.Requests), hub, identity, tc.Audience)
	}
}
