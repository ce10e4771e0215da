package cli

// The measurements `outpost bench scale` makes on a hub: registry operations
// through the service API and routing from MQTT publishes to an Event Hubs
// endpoint.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/sas"
)

// registryIDs names the devices a hub's measurements use: new ones are
// prefix and a number; existing(n) is the n-th device already registered
// (nil: the ones this run created).
type registryIDs struct {
	prefix   string
	existing func(n int) string
	// publisher names the i-th publishing device of the routing
	// measurement; createPublishers registers them first.
	publisher        func(i int) string
	createPublishers bool
}

// registryResult is one registry measurement.
type registryResult struct {
	ops, failed int64
	elapsed     time.Duration
	hist        *latencyHistogram
	firstErr    error
}

func (r registryResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// serviceClients reaches a hub's service API on every node: one HTTP client
// per node, dialing that node for the hub's host name.
type serviceClients struct {
	hub     scaleHub
	token   string
	clients []*http.Client
}

func newServiceClients(d *scaleDeployment, env *scaleEnv, hub scaleHub, perNode int) (*serviceClients, error) {
	token, err := sas.Sign(hub.host, hub.ownerKey, "iothubowner", time.Now().Add(6*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("sign a service token: %w", err)
	}
	s := &serviceClients{hub: hub, token: token}
	for _, n := range d.nodes {
		hc, err := n.api.nodeHTTP(env.suffix)
		if err != nil {
			return nil, err
		}
		if tr, ok := hc.Transport.(*http.Transport); ok {
			tr.MaxIdleConnsPerHost = perNode
		}
		s.clients = append(s.clients, hc)
	}
	return s, nil
}

func (s *serviceClients) close() {
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
}

// call makes one service API request through node i.
func (s *serviceClients) call(ctx context.Context, node int, method, path string, header http.Header, body string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+s.hub.host+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", s.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.clients[node].Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// runRegistry runs op on workers goroutines, worker w through node w mod
// nodes, until n operations were made (n > 0) or d passed.
func runRegistry(ctx context.Context, workers, nodes, n int, d time.Duration, op func(ctx context.Context, node int, k int) error) registryResult {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var (
		next, ops, failed atomic.Int64
		mu                sync.Mutex
		res               = registryResult{hist: newLatencyHistogram()}
		wg                sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newLatencyHistogram()
			defer func() { mu.Lock(); res.hist.merge(h); mu.Unlock() }()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if n > 0 && k >= n {
					return
				}
				t0 := time.Now()
				err := op(ctx, w%nodes, k)
				if err != nil {
					if ctx.Err() != nil {
						return // the deadline cut the request short: not a failure
					}
					failed.Add(1)
					mu.Lock()
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
					continue
				}
				h.record(time.Since(t0))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ops, res.failed = ops.Load(), failed.Load()
	return res
}

// measureHub runs the registry and routing measurements on one hub.
func measureHub(ctx context.Context, log *slog.Logger, d *scaleDeployment, env *scaleEnv, hub scaleHub, o scaleOptions, ids registryIDs) (scaleResults, error) {
	sc, err := newServiceClients(d, env, hub, o.registryWorkers)
	if err != nil {
		return scaleResults{}, err
	}
	defer sc.close()
	nodes := len(d.nodes)
	const api = "?api-version=" + mqttDeviceAPIVersion
	var res scaleResults
	sessions0 := d.sessions(ctx)
	res.creates = runRegistry(ctx, o.registryWorkers, nodes, o.creates, 0, func(ctx context.Context, node, k int) error {
		id := fmt.Sprintf("%s%07d", ids.prefix, k)
		return sc.call(ctx, node, http.MethodPut, "/devices/"+id+api, nil, `{"deviceId":"`+id+`"}`)
	})
	log.Info("registry creates", "hub", hub.name, "created", res.creates.ops, "failed", res.creates.failed,
		"perSecond", fmt.Sprintf("%.0f", res.creates.rate()), "firstErr", res.creates.firstErr)
	existing := ids.existing
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	pick := func() int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(1 << 30) }
	res.mix = runRegistry(ctx, o.registryWorkers, nodes, 0, o.mixDuration, func(ctx context.Context, node, k int) error {
		id := existing(pick())
		if k%2 == 0 {
			return sc.call(ctx, node, http.MethodGet, "/devices/"+id+api, nil, "")
		}
		return sc.call(ctx, node, http.MethodPatch, "/twins/"+id+api, nil, fmt.Sprintf(`{"tags":{"bench":%d}}`, k))
	})
	res.sessions = d.sessions(ctx) - sessions0
	log.Info("registry get/update mix", "hub", hub.name, "ops", res.mix.ops, "failed", res.mix.failed,
		"perSecond", fmt.Sprintf("%.0f", res.mix.rate()), "firstErr", res.mix.firstErr, "postgresSessionsOpened", res.sessions)

	// Routing: publishers spread over the nodes.
	pubIDs := make([]string, o.publishers)
	for i := range pubIDs {
		pubIDs[i] = ids.publisher(i)
		if !ids.createPublishers {
			continue
		}
		body := fmt.Sprintf(`{"deviceId":%q,"authentication":{"type":"sas","symmetricKey":{"primaryKey":%q,"secondaryKey":%q}}}`,
			pubIDs[i], deviceKey(env.seed, pubIDs[i], 1), deviceKey(env.seed, pubIDs[i], 2))
		if err := sc.call(ctx, 0, http.MethodPut, "/devices/"+pubIDs[i]+api, nil, body); err != nil {
			return res, fmt.Errorf("create publisher: %w", err)
		}
	}
	res.routing, err = measureRouting(ctx, log, d, env, hub, o, pubIDs)
	if err != nil {
		return res, err
	}
	return res, nil
}

// routingResult is one routing measurement.
type routingResult struct {
	published, acked, delivered int64
	stored                      int64         // events in the event hub's partitions
	publishElapsed              time.Duration // first publish → last PUBACK
	elapsed                     time.Duration // first publish → last delivery seen
	storedElapsed               time.Duration // first publish → last event seen stored
	complete                    bool
	connectFailed               int
}

func (r routingResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.delivered) / r.elapsed.Seconds()
}

// storedRate is the events stored in the event hub per second.
func (r routingResult) storedRate() float64 {
	if r.storedElapsed <= 0 {
		return 0
	}
	return float64(r.stored) / r.storedElapsed.Seconds()
}

// eventCounter counts the events stored in a hub's event hub: the
// messages of its partitions' JetStream streams, as the Event Hubs service
// keeps them ({prefix}_eh_{namespace}_{event hub}_{partition}).
type eventCounter struct {
	streams []string
	js      jetstream.JetStream
}

func newEventCounter(d *scaleDeployment, hub scaleHub) *eventCounter {
	c := &eventCounter{js: d.js}
	for p := range 4 {
		c.streams = append(c.streams, fmt.Sprintf("%s_eh_%s_%s_%d", d.prefix, d.prefix, hub.eventHub, p))
	}
	return c
}

func (c *eventCounter) total(ctx context.Context) (int64, error) {
	var n int64
	for _, name := range c.streams {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("event hub stream %s: %w", name, err)
		}
		n += int64(s.CachedInfo().State.Msgs)
	}
	return n, nil
}

// measureRouting connects the publishers (one client process per node),
// starts them at once, and counts the deliveries to the hub's endpoint in
// the nodes' routing metrics until every acknowledged message is counted.
func measureRouting(ctx context.Context, log *slog.Logger, d *scaleDeployment, env *scaleEnv, hub scaleHub, o scaleOptions, ids []string) (routingResult, error) {
	var res routingResult
	counter := newDeliveryCounter(d, hub)
	base, err := counter.total(ctx)
	if err != nil {
		return res, err
	}
	stored := newEventCounter(d, hub)
	storedBase, err := stored.total(ctx)
	if err != nil {
		return res, err
	}
	var procs []*clientProcess
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i := range d.nodes {
		var mine []string
		for k := i; k < len(ids); k += len(d.nodes) {
			mine = append(mine, ids[k])
		}
		if len(mine) == 0 {
			continue
		}
		p, err := startClientProcess(ctx, d, env, hub, i, clientSpec{ids: mine, publish: true, messages: o.messagesPerDevice,
			inflight: o.inflight, size: o.size, concurrency: o.connectConc})
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		ev, err := p.next(ctx, "connected", 2*time.Minute)
		if err != nil {
			return res, err
		}
		res.connectFailed += ev.Failed
	}
	start := time.Now()
	for _, p := range procs {
		p.send("go")
	}
	expected := int64(len(ids)) * int64(o.messagesPerDevice)
	type pubResult struct {
		ev  clientEvent
		err error
	}
	results := make(chan pubResult, len(procs))
	for _, p := range procs {
		go func() {
			ev, err := p.next(ctx, "published", 30*time.Minute)
			results <- pubResult{ev, err}
		}()
	}
	pending := len(procs)
	lastChange, last, lastStored := time.Now(), int64(-1), int64(-1)
	for {
		select {
		case r := <-results:
			pending--
			if r.err != nil {
				return res, r.err
			}
			res.published += r.ev.Sent
			res.acked += r.ev.Acked
			res.publishElapsed = max(res.publishElapsed, time.Duration(r.ev.EndNs-start.UnixNano()))
			if pending == 0 {
				expected = res.acked
			}
			continue
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		n, err := counter.total(ctx)
		if err != nil {
			return res, err
		}
		ev, err := stored.total(ctx)
		if err != nil {
			return res, err
		}
		now := time.Now()
		res.delivered, res.stored = n-base, ev-storedBase
		if res.delivered != last {
			last, lastChange = res.delivered, now
			res.elapsed = now.Sub(start)
		}
		if res.stored != lastStored {
			lastStored, lastChange = res.stored, now
			res.storedElapsed = now.Sub(start)
		}
		if pending == 0 && res.delivered >= expected && res.stored >= expected {
			res.complete = true
			break
		}
		if now.Sub(lastChange) > time.Minute {
			log.Warn("routing: no progress for a minute; reporting what was delivered", "delivered", res.delivered, "expected", expected)
			break
		}
	}
	log.Info("routing", "hub", hub.name, "published", res.published, "acked", res.acked, "delivered", res.delivered, "stored", res.stored,
		"perSecond", fmt.Sprintf("%.0f", res.rate()), "storedPerSecond", fmt.Sprintf("%.0f", res.storedRate()), "publishPerSecond", fmt.Sprintf("%.0f", float64(res.acked)/res.publishElapsed.Seconds()))
	return res, nil
}

// deliveryCounter sums an endpoint's deliveries over the nodes' routing
// histories (GET /outpost/iothubs/{hub}/routing/metrics on each node, one
// bucket a second). Closed buckets don't change and the history keeps 60,
// so polling more often than once a minute counts every delivery once.
type deliveryCounter struct {
	d      *scaleDeployment
	hub    scaleHub
	seen   []map[string]int64 // per node: bucket start → delivered
	client []*apiClient
}

func newDeliveryCounter(d *scaleDeployment, hub scaleHub) *deliveryCounter {
	c := &deliveryCounter{d: d, hub: hub}
	for _, n := range d.nodes {
		c.seen = append(c.seen, map[string]int64{})
		c.client = append(c.client, n.api)
	}
	return c
}

func (c *deliveryCounter) total(ctx context.Context) (int64, error) {
	var sum int64
	for i, api := range c.client {
		var view struct {
			Buckets []struct {
				Start     string `json:"start"`
				Endpoints map[string]struct {
					Delivered int64 `json:"delivered"`
				} `json:"endpoints"`
			} `json:"buckets"`
		}
		if err := api.do(ctx, http.MethodGet, "/outpost/iothubs/"+url.PathEscape(c.hub.name)+"/routing/metrics", nil, &view); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				continue
			}
			return 0, fmt.Errorf("routing metrics of node %d: %w", i, err)
		}
		for _, b := range view.Buckets {
			for name, e := range b.Endpoints {
				if strings.EqualFold(name, c.hub.endpoint) {
					c.seen[i][b.Start] = e.Delivered
				}
			}
		}
		for _, v := range c.seen[i] {
			sum += v
		}
	}
	return sum, nil
}

// clientEvent is a line a client process writes on its standard output.
type clientEvent struct {
	Event      string  `json:"event"`
	OK         int     `json:"ok"`
	Failed     int     `json:"failed"`
	ElapsedSec float64 `json:"elapsedSec"`
	FirstErr   string  `json:"firstErr,omitempty"`
	TLS        string  `json:"tls,omitempty"`
	Sent       int64   `json:"sent"`
	Acked      int64   `json:"acked"`
	EndNs      int64   `json:"endNs"`
	Alive      int     `json:"alive"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
}

func (e clientEvent) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}
