package portal_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// routedHub is a fixture whose hub has two routes to the built-in
// endpoint, a device, and one-second history buckets.
func routedHub(t *testing.T) (fixture, func(level string)) {
	t.Helper()
	f := newFixture(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMetricsBucket = time.Second }))
	f.op.must("PUT", f.hubID+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"properties":{"routing":{"routes":[
	  {"name":"critical","source":"DeviceMessages","condition":"level = 'critical'","endpointNames":["events"],"isEnabled":true},
	  {"name":"everything","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}]}}}`)
	f.op.waitHub(f.hubID)
	host, owner := f.ownerSAS(t)
	req, _ := http.NewRequest("PUT", "https://"+host+"/devices/chart-dev?api-version=2021-04-12", strings.NewReader(`{"deviceId":"chart-dev"}`))
	req.Header.Set("Authorization", owner)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		Authentication struct{ SymmetricKey struct{ PrimaryKey string } }
	}
	err = json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("create device: %s %v", resp.Status, err)
	}
	token, err := sas.Sign(host+"/devices/chart-dev", dev.Authentication.SymmetricKey.PrimaryKey, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	send := func(level string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "https://"+host+"/devices/chart-dev/messages/events?api-version=2021-04-12", strings.NewReader(`{}`))
		req.Header.Set("Authorization", token)
		req.Header.Set("iothub-app-level", level)
		resp, err := f.s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("send %s: %s", level, resp.Status)
		}
	}
	return f, send
}

// TestPortalRoutingChart: after device messages went through two routes,
// the Message routing page charts them — an accessible SVG whose label
// and hidden data table carry the counts.
func TestPortalRoutingChart(t *testing.T) {
	f, send := routedHub(t)
	for _, level := range []string{"critical", "info", "critical", "info", "critical"} {
		send(level)
	}
	b := newBrowser(t, f.s)
	op := f.s.App.Operator()
	b.signIn(op.ClientID, op.ClientSecret)
	routing := "/portal/routing?id=" + url.QueryEscape(f.hubID)
	// Before the routes were saved the hub had IoT Hub's default fallback
	// route, so a $fallback line (with no messages) may be charted too.
	wants := []string{"endpoint events delivered 5;", "route critical matched 3;", "route everything matched 5."}
	summarised := func(body string) bool {
		for _, w := range wants {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	}
	var page answer
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		page = b.get(routing)
		if page.status != http.StatusOK {
			t.Fatalf("routing page: %d\n%s", page.status, page.body)
		}
		if summarised(page.body) || time.Now().After(deadline) {
			break
		}
	}
	if !summarised(page.body) {
		t.Fatalf("the chart's summary does not say %q:\n%s", wants, section(page.body, "traffic"))
	}
	for _, frag := range []string{
		`<figure class="chart" id="traffic-chart">`, `role="img"`, `<figcaption>`,
		`<table class="visually-hidden" id="traffic-data">`, `<th scope="col">Route critical</th>`,
		`Route <strong>everything</strong>: 5 matched`, `Endpoint <strong>events</strong>: 5 delivered`,
	} {
		if !strings.Contains(page.body, frag) {
			t.Errorf("the chart lacks %q:\n%s", frag, section(page.body, "traffic"))
		}
	}
	// One line per series, one table column per series; the columns add
	// up to the totals (the messages may fall into one bucket or two).
	table := section(page.body, "traffic-data")
	var columns []string
	for _, m := range regexp.MustCompile(`<th scope="col">([^<]*)</th>`).FindAllStringSubmatch(table, -1)[1:] {
		columns = append(columns, m[1])
	}
	if n := strings.Count(page.body, `<polyline points=`); n != len(columns) || n < 3 {
		t.Errorf("%d chart lines for the series %v", n, columns)
	}
	sums := map[string]int{}
	for _, row := range regexp.MustCompile(`(?s)<tr><th scope="row">[^<]*</th>(.*?)</tr>`).FindAllStringSubmatch(table, -1) {
		for i, cell := range regexp.MustCompile(`<td>(\d+)</td>`).FindAllStringSubmatch(row[1], -1) {
			var v int
			fmt.Sscan(cell[1], &v)
			sums[columns[i]] += v
		}
	}
	if sums["Endpoint events"] != 5 || sums["Route critical"] != 3 || sums["Route everything"] != 5 {
		t.Errorf("data table sums %v, want events 5, critical 3, everything 5:\n%s", sums, table)
	}
}

// TestRoutingMetricsAPI: GET /outpost/iothubs/{hub}/routing/metrics counts
// what the routes matched and the endpoint delivered, in one-second
// buckets; a principal without a role on the hub is refused.
func TestRoutingMetricsAPI(t *testing.T) {
	f, send := routedHub(t)
	for _, level := range []string{"critical", "info", "info"} {
		send(level)
	}
	type doc struct {
		BucketSeconds float64 `json:"bucketSeconds"`
		Buckets       []struct {
			Start     string `json:"start"`
			Endpoints map[string]struct {
				Delivered, Failed int64
				Status            string
			} `json:"endpoints"`
			Routes map[string]int64 `json:"routes"`
		} `json:"buckets"`
	}
	var got doc
	var critical, everything, delivered int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		code, raw := f.op.do("GET", "/outpost/iothubs/"+f.hubName+"/routing/metrics", "")
		if code != http.StatusOK {
			t.Fatalf("metrics: %d %v", code, raw)
		}
		buf, _ := json.Marshal(raw)
		got = doc{}
		if err := json.Unmarshal(buf, &got); err != nil {
			t.Fatal(err)
		}
		critical, everything, delivered = 0, 0, 0
		for _, b := range got.Buckets {
			if _, err := time.Parse(time.RFC3339, b.Start); err != nil {
				t.Fatalf("bucket start %q: %v", b.Start, err)
			}
			critical += b.Routes["critical"]
			everything += b.Routes["everything"]
			delivered += b.Endpoints["events"].Delivered
		}
		if everything == 3 && delivered == 3 {
			break
		}
	}
	if got.BucketSeconds != 1 || critical != 1 || everything != 3 || delivered != 3 {
		t.Fatalf("bucketSeconds %v, critical %d, everything %d, events delivered %d; want 1, 1, 3, 3: %+v",
			got.BucketSeconds, critical, everything, delivered, got)
	}
	// Buckets close as the clock passes them: a second later there are at
	// least two, a second apart.
	time.Sleep(1100 * time.Millisecond)
	_, raw := f.op.do("GET", "/outpost/iothubs/"+f.hubName+"/routing/metrics", "")
	buckets, _ := raw["buckets"].([]any)
	if len(buckets) < 2 {
		t.Fatalf("one second later, %d buckets: %v", len(buckets), raw)
	}
	if code, _ := f.op.do("GET", "/outpost/iothubs/nosuchhub/routing/metrics", ""); code != http.StatusNotFound {
		t.Errorf("unknown hub: %d, want 404", code)
	}
	req, _ := http.NewRequest("GET", f.s.Endpoint+"/outpost/iothubs/"+f.hubName+"/routing/metrics", nil)
	if resp, err := f.s.HTTPClient().Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %s, want 401", resp.Status)
	}
}

// section is the element with the given id, for failure messages.
func section(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return body
	}
	end := min(len(body), i+6000)
	return body[i:end]
}
