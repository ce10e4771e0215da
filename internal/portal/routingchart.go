package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metricsDoc is GET /outpost/iothubs/{hub}/routing/metrics.
type metricsDoc struct {
	BucketSeconds float64 `json:"bucketSeconds"`
	Buckets       []struct {
		Start     string `json:"start"`
		Endpoints map[string]struct {
			Delivered int64  `json:"delivered"`
			Failed    int64  `json:"failed"`
			Status    string `json:"status"`
		} `json:"endpoints"`
		Routes map[string]int64 `json:"routes"`
	} `json:"buckets"`
}

// Chart geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartWidth, chartHeight = 640.0, 200.0
	chartLeft, chartRight   = 40.0, 8.0
	chartTop, chartBottom   = 8.0, 24.0
	stripCell               = 10.0
)

// routingChart is the Message routing page's traffic chart and health
// strips, laid out on the server: the page has no chart script, and its
// Content-Security-Policy allows none inline.
type routingChart struct {
	BucketSeconds int
	Summary       string // the chart's aria-label
	Labels        []string
	// Max is the y axis' top; Ticks its labels.
	Max    int64
	Ticks  []chartTick
	Series []chartSeries
	XTicks []chartTick
	Health []healthStrip
	Width  float64 // strip width
}

type chartTick struct {
	Pos   float64
	Label string
}

// chartSeries is one endpoint's deliveries or one route's matches.
type chartSeries struct {
	Name, Kind string // Kind: "Endpoint" or "Route"
	Class      string // series-0 … series-5: colour and dash pattern
	Points     string // polyline points
	Values     []int64
	Total      int64
}

type healthStrip struct {
	Name  string
	Cells []healthCell
}

type healthCell struct {
	X              float64
	Status, Letter string
	Label          string // bucket start and status, as the cell's title
}

// healthLetters mark the strip cells, so the strip does not rely on colour.
var healthLetters = map[string]string{"healthy": "H", "degraded": "D", "unhealthy": "U", "dead": "X", "unknown": "?"}

// routingMetrics reads the hub's routing history; nil when it can't (the
// page shows the rest without it).
func (h *Handler) routingMetrics(ctx context.Context, s *session, hub string) *routingChart {
	resp, err := h.do(ctx, call{method: http.MethodGet, host: s.host, path: "/outpost/iothubs/" + url.PathEscape(hub) + "/routing/metrics",
		token: s.armToken, remote: s.remote})
	if err != nil || resp.status != http.StatusOK {
		return nil
	}
	var doc metricsDoc
	if resp.decode(&doc) != nil {
		return nil
	}
	return buildRoutingChart(doc)
}

// buildRoutingChart lays out the chart: one line per endpoint (messages
// delivered) and per route (messages matched), one strip per custom
// endpoint (its health at each bucket's end).
func buildRoutingChart(doc metricsDoc) *routingChart {
	c := &routingChart{BucketSeconds: int(doc.BucketSeconds)}
	n := len(doc.Buckets)
	if n == 0 {
		return c
	}
	endpoints, routes := map[string][]int64{}, map[string][]int64{}
	statuses := map[string][]string{}
	for i, b := range doc.Buckets {
		label := b.Start
		if t, err := time.Parse(time.RFC3339, b.Start); err == nil {
			label = t.UTC().Format("15:04:05")
		}
		c.Labels = append(c.Labels, label)
		for name, e := range b.Endpoints {
			if endpoints[name] == nil {
				endpoints[name] = make([]int64, n)
			}
			endpoints[name][i] = e.Delivered
			if !strings.EqualFold(name, "events") {
				if statuses[name] == nil {
					statuses[name] = make([]string, n)
				}
				statuses[name][i] = e.Status
			}
		}
		for name, v := range b.Routes {
			if routes[name] == nil {
				routes[name] = make([]int64, n)
			}
			routes[name][i] = v
		}
	}
	add := func(kind string, m map[string][]int64) {
		for _, name := range sortedKeys(m) {
			s := chartSeries{Name: name, Kind: kind, Values: m[name]}
			for _, v := range s.Values {
				s.Total += v
				c.Max = max(c.Max, v)
			}
			c.Series = append(c.Series, s)
		}
	}
	add("Endpoint", endpoints)
	add("Route", routes)
	c.Max = niceCeiling(c.Max)
	plotW, plotH := chartWidth-chartLeft-chartRight, chartHeight-chartTop-chartBottom
	x := func(i int) float64 {
		if n == 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + plotW*float64(i)/float64(n-1)
	}
	y := func(v int64) float64 { return chartTop + plotH*(1-float64(v)/float64(c.Max)) }
	for i := range c.Series {
		s := &c.Series[i]
		s.Class = "series-" + strconv.Itoa(i%6)
		pts := make([]string, len(s.Values))
		for j, v := range s.Values {
			pts[j] = fmt.Sprintf("%.1f,%.1f", x(j), y(v))
		}
		s.Points = strings.Join(pts, " ")
	}
	for _, v := range []int64{0, c.Max / 2, c.Max} {
		c.Ticks = append(c.Ticks, chartTick{Pos: y(v), Label: strconv.FormatInt(v, 10)})
	}
	for _, i := range []int{0, n / 2, n - 1} {
		c.XTicks = append(c.XTicks, chartTick{Pos: x(i), Label: c.Labels[i]})
	}
	c.Width = stripCell * float64(n)
	for _, name := range sortedKeys(statuses) {
		st := healthStrip{Name: name}
		for i, s := range statuses[name] {
			if s == "" {
				s = "unknown"
			}
			letter := healthLetters[s]
			if letter == "" {
				letter = "?"
			}
			st.Cells = append(st.Cells, healthCell{X: stripCell * float64(i), Status: s, Letter: letter, Label: c.Labels[i] + " " + s})
		}
		c.Health = append(c.Health, st)
	}
	var parts []string
	for _, s := range c.Series {
		verb := "delivered"
		if s.Kind == "Route" {
			verb = "matched"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s %d", strings.ToLower(s.Kind), s.Name, verb, s.Total))
	}
	c.Summary = fmt.Sprintf("Messages per %d-second bucket over the last %d buckets: %s.", c.BucketSeconds, n, strings.Join(parts, "; "))
	return c
}

// niceCeiling rounds a chart's maximum up to 1, 2 or 5 times a power of
// ten (at least 1), so the axis labels are round numbers.
func niceCeiling(v int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if v <= m*p {
				return m * p
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	return keys
}
