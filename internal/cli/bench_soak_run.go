package cli

// The bench soak run: publishing, sampling every interval into the CSV,
// draining the endpoints at the end, and the verdict.

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type soakRun struct {
	o         soakOptions
	node      soakNode
	st        soakSetup
	conns     []*soakConn
	consumers *soakConsumers
	out       io.Writer
	log       *slog.Logger

	logOffset     int64
	tokenErrors   int64
	tokenExamples []string
	unhealthy     int64 // samples × endpoints not healthy
	healthErrors  []string
	tokenRefresh  time.Time
	http401       int64 // 401s in the node's /metrics
}

// soakSample is one CSV row.
type soakSample struct {
	elapsed         time.Duration
	rss, heapInuse  float64 // MiB
	heapAlloc       float64
	goroutines      float64
	sent, acked     int64
	ackRate         float64
	p50, p99, max   time.Duration
	delivered       map[string]int64
	duplicates      int64
	unhealthy       int
	tokenErrors     int64
	consumerErrors  int64
	connectionsLost int
	hist            *latencyHistogram
}

func soakCSVHeader() []string {
	h := []string{"elapsed_s", "time", "rss_mib", "heap_inuse_mib", "heap_alloc_mib", "goroutines", "sent", "acked",
		"acked_per_s", "p50_ms", "p99_ms", "max_ms"}
	for _, n := range soakEndpointNames() {
		h = append(h, "delivered_"+n)
	}
	return append(h, "duplicates", "unhealthy_endpoints", "token_errors", "consumer_errors", "connections_lost")
}

func (s soakSample) row(at time.Time) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	ms := func(d time.Duration) string { return f(float64(d) / 1e6) }
	r := []string{f(s.elapsed.Seconds()), at.UTC().Format(time.RFC3339), f(s.rss), f(s.heapInuse), f(s.heapAlloc), f(s.goroutines),
		strconv.FormatInt(s.sent, 10), strconv.FormatInt(s.acked, 10), f(s.ackRate), ms(s.p50), ms(s.p99), ms(s.max)}
	for _, n := range soakEndpointNames() {
		r = append(r, strconv.FormatInt(s.delivered[n], 10))
	}
	return append(r, strconv.FormatInt(s.duplicates, 10), strconv.Itoa(s.unhealthy), strconv.FormatInt(s.tokenErrors, 10),
		strconv.FormatInt(s.consumerErrors, 10), strconv.Itoa(s.connectionsLost))
}

// soakResult is what the verdict is made of.
type soakResult struct {
	o                      soakOptions
	samples                []soakSample
	sent, acked            int64
	lost, duplicates       map[string]int64
	received               map[string]int64
	tokenErrors, unhealthy int64
	connectionsLost        int
	failures               []string
}

func (r soakResult) verdictError() error {
	if len(r.failures) == 0 {
		return nil
	}
	return fmt.Errorf("soak verdict: %s", strings.Join(r.failures, "; "))
}

func (r *soakRun) run(ctx context.Context) (soakResult, error) {
	f, err := os.Create(r.o.csv)
	if err != nil {
		return soakResult{}, fmt.Errorf("soak: %w", err)
	}
	defer f.Close()
	cw := csv.NewWriter(f)
	if err := cw.Write(soakCSVHeader()); err != nil {
		return soakResult{}, fmt.Errorf("soak csv: %w", err)
	}
	cw.Flush()

	pctx, stop := context.WithTimeout(ctx, r.o.duration)
	defer stop()
	var interval time.Duration
	if !r.o.findMax {
		interval = time.Duration(float64(len(r.conns)) / r.o.rate * float64(time.Second))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range r.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := start.Add(time.Duration(int64(interval) * int64(i) / int64(len(r.conns))))
			c.publish(pctx, r.o.size, interval, first)
		}()
	}
	res := soakResult{o: r.o}
	tick := time.NewTicker(r.o.interval)
	defer tick.Stop()
	prev := soakSample{delivered: map[string]int64{}}
	prevAt := start
	r.tokenRefresh = time.Now()
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-pctx.Done():
			break sampling
		case now := <-tick.C:
			s := r.sample(ctx, start, now, prev, prevAt)
			res.samples = append(res.samples, s)
			if err := cw.Write(s.row(now)); err != nil {
				return res, fmt.Errorf("soak csv: %w", err)
			}
			cw.Flush()
			writeSoakLine(r.out, "%6.0fs  RSS %7.1f MiB  heap %7.1f MiB  acked %9d (%6.0f/s)  p50 %8s  p99 %8s  delivered %s  unhealthy %d  token errors %d",
				s.elapsed.Seconds(), s.rss, s.heapInuse, s.acked, s.ackRate, fmtLatency(s.p50), fmtLatency(s.p99),
				describeDelivered(s.delivered), s.unhealthy, s.tokenErrors)
			prev, prevAt = s, now
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, c := range r.conns {
		c.awaitAcks(10 * time.Second)
	}
	for _, c := range r.conns {
		if c.dropped() {
			res.connectionsLost++
		}
		c.close()
		res.sent += c.sent.Load()
		res.acked += c.acked.Load()
	}
	acked := make([]idSet, len(r.conns))
	for _, c := range r.conns {
		acked[c.idx] = c.ackedIDs
	}
	writeSoakLine(r.out, "published for %s: sent %d, acknowledged %d (%.0f msgs/s); draining the endpoints (up to %s without progress)",
		elapsed.Round(time.Millisecond), res.sent, res.acked, float64(res.acked)/elapsed.Seconds(), r.o.drainTimeout)
	drainStart := time.Now()
	complete := r.drain(ctx, acked).Sub(start)
	res.lost, res.duplicates, res.received = map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, n := range soakEndpointNames() {
		t := r.consumers.tallies[n]
		res.received[n], res.duplicates[n] = t.counts()
		res.lost[n] = t.lostOf(acked)
	}
	// A last sample after the drain, for the delivered counts.
	final := r.sample(ctx, start, time.Now(), prev, prevAt)
	final.p50, final.p99, final.max = 0, 0, 0
	if err := cw.Write(final.row(time.Now())); err == nil {
		cw.Flush()
	}
	res.tokenErrors, res.unhealthy = r.tokenErrors+r.http401, r.unhealthy
	writeSoakLine(r.out, "drained in %s", time.Since(drainStart).Round(time.Second))
	if r.o.findMax {
		r.reportMax(res, elapsed, complete)
		return res, nil
	}
	r.verdict(&res)
	return res, nil
}

// drain reads until every endpoint has every acknowledged message, or none
// got anything new for the drain timeout, and returns when the last new
// message arrived.
func (r *soakRun) drain(ctx context.Context, acked []idSet) time.Time {
	last := map[string]int64{}
	progress := time.Now()
	deadline := progress.Add(r.o.drainMax)
	for time.Since(progress) < r.o.drainTimeout && time.Now().Before(deadline) && ctx.Err() == nil {
		complete := true
		for _, n := range soakEndpointNames() {
			t := r.consumers.tallies[n]
			u, _ := t.counts()
			if u != last[n] {
				last[n], progress = u, time.Now()
			}
			if t.lostOf(acked) > 0 {
				complete = false
			}
		}
		if complete {
			return progress
		}
		time.Sleep(200 * time.Millisecond)
	}
	return progress
}

func (r *soakRun) sample(ctx context.Context, start, now time.Time, prev soakSample, prevAt time.Time) soakSample {
	s := soakSample{elapsed: now.Sub(start), delivered: map[string]int64{}, hist: newLatencyHistogram()}
	for _, c := range r.conns {
		s.sent += c.sent.Load()
		s.acked += c.acked.Load()
		s.hist.merge(c.takeHistogram())
		if c.dropped() {
			s.connectionsLost++
		}
	}
	s.p50, s.p99, s.max = s.hist.quantile(0.5), s.hist.quantile(0.99), s.hist.max
	dt := now.Sub(prevAt).Seconds()
	s.ackRate = float64(s.acked-prev.acked) / dt
	for _, n := range soakEndpointNames() {
		t := r.consumers.tallies[n]
		u, d := t.counts()
		s.delivered[n] = u
		s.duplicates += d
		t.mu.Lock()
		s.consumerErrors += t.errors
		t.mu.Unlock()
	}
	m := r.readMetrics(ctx)
	s.heapInuse, s.heapAlloc, s.goroutines = m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_memstats_heap_alloc_bytes"]/(1<<20), m["go_goroutines"]
	s.rss = m["process_resident_memory_bytes"] / (1 << 20)
	if ps, err := readProcStats(r.node.pid); err == nil {
		s.rss = float64(ps.rss) / (1 << 20)
	}
	s.unhealthy = r.checkHealth(ctx)
	r.unhealthy += int64(s.unhealthy)
	r.scanNodeLog()
	r.http401 = max(r.http401, int64(m["http_401"]))
	s.tokenErrors = r.tokenErrors + r.http401
	return s
}

// readMetrics reads the node's Go runtime and process gauges from /metrics.
func (r *soakRun) readMetrics(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.node.c.endpoint+"/metrics", nil)
	if err != nil {
		return out
	}
	resp, err := r.node.httpClient.Do(req)
	if err != nil {
		r.log.Warn("soak: read /metrics", "err", err)
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// Every 401 the node answered over HTTPS (the routing senders' REST
		// calls to its own Event Hubs, Service Bus and blob hosts included).
		if strings.HasPrefix(line, "outpost_http_requests_total{") && strings.Contains(line, `code="401"`) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				v, _ := strconv.ParseFloat(line[i+1:], 64)
				out["http_401"] += v
			}
		}
		for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_goroutines", "process_resident_memory_bytes"} {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				out[name], _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
	}
	return out
}

// checkHealth counts the hub's routing endpoints that are not healthy and
// notes their errors (a 401 is a token error).
func (r *soakRun) checkHealth(ctx context.Context) int {
	if time.Since(r.tokenRefresh) > 4*time.Minute {
		// The operator's token outlives a short --token-lifetime only
		// if renewed ahead of expiry; a 401 here would be the tool's own.
		r.node.c.token, r.tokenRefresh = "", time.Now()
	}
	r.node.c.retried = false
	var health struct {
		Value []struct {
			EndpointID     string `json:"endpointId"`
			HealthStatus   string `json:"healthStatus"`
			LastKnownError string `json:"lastKnownError"`
		} `json:"value"`
	}
	if err := r.node.c.do(ctx, http.MethodGet, r.st.hubID+"/routingEndpointsHealth?api-version="+hubAPIVersion, nil, &health); err != nil {
		r.log.Warn("soak: routing endpoint health", "err", err)
		return 0
	}
	n := 0
	for _, e := range health.Value {
		// "unknown" is an endpoint nothing was sent to yet.
		if e.HealthStatus != "healthy" && e.HealthStatus != "unknown" {
			n++
			msg := fmt.Sprintf("%s %s: %s", e.EndpointID, e.HealthStatus, e.LastKnownError)
			if len(r.healthErrors) < 5 {
				r.healthErrors = append(r.healthErrors, msg)
			}
			if strings.HasPrefix(e.LastKnownError, "401") {
				r.tokenErrors++
			}
		}
	}
	return n
}

// scanNodeLog counts the node log's new lines that report a 401 or an
// expired token.
func (r *soakRun) scanNodeLog() {
	if r.o.nodeLog == "" {
		return
	}
	f, err := os.Open(r.o.nodeLog)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(r.logOffset, io.SeekStart); err != nil {
		return
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break // a partial last line is read again next time
		}
		r.logOffset += int64(len(line))
		if isTokenErrorLine(line) {
			r.tokenErrors++
			if len(r.tokenExamples) < 5 {
				r.tokenExamples = append(r.tokenExamples, strings.TrimSpace(line))
			}
		}
	}
}

// isTokenErrorLine: a 401 status or token expiry named in a log line.
func isTokenErrorLine(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "status=401") || strings.Contains(l, " 401 ") || strings.Contains(l, "401 unauthorized") ||
		strings.Contains(l, "token expired") || strings.Contains(l, "expiredtoken") || strings.Contains(l, "token is expired")
}

func describeDelivered(d map[string]int64) string {
	parts := make([]string, 0, len(d))
	for _, n := range soakEndpointNames() {
		parts = append(parts, fmt.Sprintf("%s %d", n, d[n]))
	}
	return strings.Join(parts, ", ")
}

// reportMax prints the rates of a --find-max run. The hub acknowledges
// faster than routing delivers (it stores first, routes after), so the
// maximum of the set-up is end to end: every acknowledged message in every
// endpoint, per second from the first publish until the last endpoint had
// all of them.
func (r *soakRun) reportMax(res soakResult, elapsed, complete time.Duration) {
	ackRate := float64(res.acked) / elapsed.Seconds()
	writeSoakLine(r.out, "find-max: acknowledged %.0f msgs/s while publishing (%d in %s)", ackRate, res.acked, elapsed.Round(time.Millisecond))
	for _, n := range soakEndpointNames() {
		writeSoakLine(r.out, "find-max: endpoint %-8s received %d, lost %d, duplicated %d", n, res.received[n], res.lost[n], res.duplicates[n])
	}
	e2e := float64(res.acked) / complete.Seconds()
	writeSoakLine(r.out, "find-max: every endpoint had every message %s after the first publish → end-to-end maximum %.0f msgs/s → soak at --rate %.0f",
		complete.Round(time.Second), e2e, e2e/2)
}

// slopePerHour is the least-squares slope of y over x seconds, per hour.
func slopePerHour(x, y []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (y[i] - my)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den * 3600
}

// verdict prints the run's verdict and records what failed.
func (r *soakRun) verdict(res *soakResult) {
	o := r.o
	samples := res.samples
	fail := func(format string, args ...any) { res.failures = append(res.failures, fmt.Sprintf(format, args...)) }
	writeSoakLine(r.out, "verdict (%d samples over %s):", len(samples), o.duration)

	// Memory: the least-squares slope over the second half of the run
	// (the first half holds the warm-up: pools, caches, JetStream buffers
	// filling), times the half's length, against the half's mean.
	var xs, rss, heap []float64
	for _, s := range samples {
		if s.elapsed >= o.duration/2 {
			xs, rss, heap = append(xs, s.elapsed.Seconds()), append(rss, s.rss), append(heap, s.heapInuse)
		}
	}
	half := (o.duration / 2).Hours()
	growth := func(name string, ys []float64, limit float64) {
		slope := slopePerHour(xs, ys)
		mean := 0.0
		for _, y := range ys {
			mean += y
		}
		if len(ys) > 0 {
			mean /= float64(len(ys))
		}
		grown := slope * half
		ok := mean == 0 || grown <= limit*mean
		writeSoakLine(r.out, "  memory %s: second-half mean %.1f MiB, slope %+.2f MiB/h → %+.1f MiB over the half (%+.1f %%, limit %.0f %%) %s",
			name, mean, slope, grown, 100*grown/math.Max(mean, 1e-9), 100*limit, passFail(ok))
		if !ok {
			fail("%s grew %.1f MiB over the second half", name, grown)
		}
	}
	growth("RSS", rss, o.maxRSSGrowth)
	growth("Go heap in use", heap, o.maxHeapGrowth)

	// Latency: p99 of the first window against the last (10 minutes, or a
	// third of a shorter run).
	window := min(10*time.Minute, o.duration/3)
	first, last := newLatencyHistogram(), newLatencyHistogram()
	for _, s := range samples {
		if s.elapsed <= window {
			first.merge(s.hist)
		}
		if s.elapsed > o.duration-window {
			last.merge(s.hist)
		}
	}
	p99a, p99b := first.quantile(0.99), last.quantile(0.99)
	ratio := float64(p99b) / math.Max(float64(p99a), 1)
	ok := ratio <= o.maxP99Ratio
	writeSoakLine(r.out, "  latency p99: first %s %s, last %s %s (×%.2f, limit ×%.1f); p50 %s → %s %s",
		window.Round(time.Second), fmtLatency(p99a), window.Round(time.Second), fmtLatency(p99b), ratio, o.maxP99Ratio, fmtLatency(first.quantile(0.5)), fmtLatency(last.quantile(0.5)), passFail(ok))
	if !ok {
		fail("p99 rose from %s to %s", fmtLatency(p99a), fmtLatency(p99b))
	}

	writeSoakLine(r.out, "  token errors: %d (HTTP 401s in the node's /metrics, 401s and expiry in the node log, endpoints unhealthy with a 401); unhealthy endpoint samples: %d %s",
		res.tokenErrors, res.unhealthy, passFail(res.tokenErrors == 0 && res.unhealthy == 0))
	for _, e := range append(r.tokenExamples, r.healthErrors...) {
		writeSoakLine(r.out, "    %s", e)
	}
	if res.tokenErrors > 0 {
		fail("%d token errors", res.tokenErrors)
	}
	if res.unhealthy > 0 {
		fail("endpoints unhealthy in %d endpoint-samples", res.unhealthy)
	}
	writeSoakLine(r.out, "  messages: sent %d, acknowledged %d; connections lost %d %s", res.sent, res.acked, res.connectionsLost, passFail(res.connectionsLost == 0))
	if res.connectionsLost > 0 {
		fail("%d connections lost", res.connectionsLost)
	}
	for _, n := range soakEndpointNames() {
		ok := res.lost[n] == 0 && res.received[n] > 0
		writeSoakLine(r.out, "  endpoint %-8s received %d, lost %d, duplicated %d %s", n, res.received[n], res.lost[n], res.duplicates[n], passFail(ok))
		if !ok {
			fail("endpoint %s lost %d of %d (received %d)", n, res.lost[n], res.acked, res.received[n])
		}
	}
	if len(res.failures) == 0 {
		writeSoakLine(r.out, "verdict: PASS")
	} else {
		writeSoakLine(r.out, "verdict: FAIL (%s)", strings.Join(res.failures, "; "))
	}
}

func passFail(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}
