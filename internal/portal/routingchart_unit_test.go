package portal

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoutingChartRender: the chart's numbers come from the history's
// buckets, names are escaped wherever they appear (labels, legend, table,
// titles), and each health cell carries a letter besides its colour.
func TestRoutingChartRender(t *testing.T) {
	var doc metricsDoc
	err := json.Unmarshal([]byte(`{"bucketSeconds":60,"buckets":[
	 {"start":"2026-11-28T22:00:00Z","endpoints":{"events":{"delivered":1,"status":"healthy"},"<b>hub</b>":{"delivered":4,"status":"healthy"}},"routes":{"r\"&<x>":4}},
	 {"start":"2026-11-28T22:01:00Z","endpoints":{"events":{"delivered":0,"status":"healthy"},"<b>hub</b>":{"failed":2,"status":"degraded"}},"routes":{"r\"&<x>":2}}]}`), &doc)
	if err != nil {
		t.Fatal(err)
	}
	c := buildRoutingChart(doc)
	if c.Max != 5 || len(c.Series) != 3 || len(c.Health) != 1 {
		t.Fatalf("chart: max %d, %d series, %d strips", c.Max, len(c.Series), len(c.Health))
	}
	// x: 40 and 632 (two buckets); y: 8 + 168·(1 − v/5).
	if got := c.Series[0]; got.Name != "<b>hub</b>" || got.Points != "40.0,41.6 632.0,176.0" || got.Total != 4 {
		t.Errorf("endpoint series: %+v", got)
	}
	if got := c.Series[2]; got.Kind != "Route" || got.Points != "40.0,41.6 632.0,108.8" || got.Total != 6 {
		t.Errorf("route series: %+v", got)
	}
	h, err := New(Config{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.render(rec, http.StatusOK, "routing", &page{Title: "Message routing", Session: &session{name: "op", csrf: "c"},
		Resource: &resourceRef{ID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Devices/IotHubs/h", Name: "h", Kind: "hub"},
		Blade:    "routing", Data: &routingData{Chart: c}})
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("render: %d\n%s", rec.Code, body)
	}
	if strings.Contains(body, "<b>hub</b>") || strings.Contains(body, "<x>") {
		t.Errorf("an unescaped name:\n%s", body)
	}
	for _, frag := range []string{
		`aria-label="Messages per 60-second bucket over the last 2 buckets: endpoint &lt;b&gt;hub&lt;/b&gt; delivered 4; endpoint events delivered 1; route r&#34;&amp;&lt;x&gt; matched 6."`,
		`<th scope="col">Endpoint &lt;b&gt;hub&lt;/b&gt;</th>`,
		`<tr><th scope="row">22:00:00</th><td>4</td><td>1</td><td>4</td></tr>`,
		`<tr><th scope="row">22:01:00</th><td>0</td><td>0</td><td>2</td></tr>`,
		`Route <strong>r&#34;&amp;&lt;x&gt;</strong>: 6 matched`,
		`aria-label="Health history of &lt;b&gt;hub&lt;/b&gt;: 22:00:00 healthy, 22:01:00 degraded"`,
		`class="hs-healthy"/><text x="0" dx="4.5" y="9" class="strip-letter">H</text>`,
		`class="hs-degraded"/><text x="10" dx="4.5" y="9" class="strip-letter">D</text>`,
		`<span class="hs-legend hs-dead">X</span> dead`,
	} {
		if !strings.Contains(body, frag) {
			t.Errorf("the page lacks %s", frag)
		}
	}
	// No history (the API refused or failed): the page says so.
	rec = httptest.NewRecorder()
	h.render(rec, http.StatusOK, "routing", &page{Title: "Message routing", Session: &session{name: "op", csrf: "c"},
		Resource: &resourceRef{ID: "/x", Name: "h", Kind: "hub"}, Blade: "routing", Data: &routingData{}})
	if !strings.Contains(rec.Body.String(), "The routing history is not available.") {
		t.Error("no notice without a history")
	}
}
