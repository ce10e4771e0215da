package app

import (
	"net/http"
	"time"

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
