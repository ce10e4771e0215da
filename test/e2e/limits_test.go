package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestClusterD2CThrottle: a hub's device-to-cloud rate holds across two
// nodes (each enforces half), and when one node stops the other takes the
// whole rate within the documented bound.
//
// Tolerance: the hub may accept its rate times the duration plus one
// second's worth (each node's bucket starts full, and the shares' bursts
// add up to one second of the rate); the test allows 10 % over that, and
// expects at least 80 % of the rate while both nodes are loaded evenly.
func TestClusterD2CThrottle(t *testing.T) {
	const rate = 40.0
	a := testserver.Start(t, testserver.WithPostgres(), testserver.WithExternalNATS(),
		testserver.WithConfig(func(c *config.Config) { c.Hub.D2CMessagesPerSecond = rate }))
	b := testserver.StartPeer(t, a)
	a.Require443(t)
	b.Require443(t)
	h := createHub(t, a, "rg-cluster-throttle")
	keys := map[string]string{"dev-a": createDevice(t, a, h, "dev-a"), "dev-b": createDevice(t, a, h, "dev-b")}
	eventually(t, 5*time.Second, func() bool { return a.App.ClusterNodes() == 2 && b.App.ClusterNodes() == 2 },
		"both nodes count two live nodes")

	load := func(nodes map[string]*testserver.Server, d time.Duration) (accepted, throttled int64) {
		var wg sync.WaitGroup
		var acc, thr atomic.Int64
		stop := time.Now().Add(d)
		for dev, s := range nodes {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := s.HTTPClient()
					for time.Now().Before(stop) {
						switch code, _ := sendHTTPS(t, client, h, dev, keys[dev]); code {
						case http.StatusNoContent:
							acc.Add(1)
						case http.StatusTooManyRequests:
							thr.Add(1)
						default:
							t.Errorf("telemetry through %s: %d", s.IP, code)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		return acc.Load(), thr.Load()
	}

	const seconds = 4
	acc, thr := load(map[string]*testserver.Server{"dev-a": a, "dev-b": b}, seconds*time.Second)
	ceiling := rate * (seconds + 1) * 1.1
	t.Logf("two nodes, %v/s for the hub, %ds: accepted %d (%.1f/s), throttled %d; ceiling %.0f (per-node enforcement would allow about %.0f)",
		rate, seconds, acc, float64(acc)/seconds, thr, ceiling, 2*rate*(seconds+1))
	if float64(acc) > ceiling {
		t.Errorf("the hub accepted %d messages in %ds through two nodes, over its %v/s (ceiling %.0f)", acc, seconds, rate, ceiling)
	}
	if float64(acc) < 0.8*rate*seconds {
		t.Errorf("the hub accepted only %d messages in %ds with both nodes loaded, under 80%% of its rate", acc, seconds)
	}
	if thr == 0 {
		t.Errorf("nothing throttled: the load did not reach the rate")
	}

	start := time.Now()
	b.Stop(t)
	eventually(t, throttle.PeerTTL+2*throttle.HeartbeatInterval, func() bool { return a.App.ClusterNodes() == 1 }, "node A counts itself alone")
	t.Logf("node B stopped: node A re-balanced after %s (bound for a node that dies without a word: %s)",
		time.Since(start).Round(time.Millisecond), throttle.PeerTTL+throttle.HeartbeatInterval)
	time.Sleep(time.Second) // A's bucket refills
	acc, thr = load(map[string]*testserver.Server{"dev-a": a}, 2*time.Second)
	t.Logf("node A alone, 2s: accepted %d, throttled %d", acc, thr)
	if float64(acc) < 0.8*rate*2 {
		t.Errorf("node A alone accepted %d in 2s: it still enforces a share, not the hub's %v/s", acc, rate)
	}
}

// TestHubThrottles: the registry, twin, method and per-device rates answer
// IoT Hub's 429 ThrottlingException over HTTPS, a twin request over MQTT
// gets twin/res/429 and the connection stays up, and /metrics counts each
// kind.
func TestHubThrottles(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Hub.RegistryOperationsPerSecond = 2
		c.Hub.TwinReadsPerSecond = 2
		c.Hub.TwinUpdatesPerSecond = 2
		c.Hub.MethodsPerSecond = 2
		c.Hub.DeviceD2CMessagesPerSecond = 2
	}))
	h := createHub(t, s, "rg-hub-throttles")
	key := createDevice(t, s, h, "thr-dev")
	time.Sleep(time.Second) // the registry bucket refills after the create

	burst := func(name string, n int, call func() (int, []byte)) {
		t.Helper()
		throttled := 0
		for range n {
			code, body := call()
			if code != http.StatusTooManyRequests {
				continue
			}
			throttled++
			var e struct{ Message string }
			_ = json.Unmarshal(body, &e)
			if !strings.HasPrefix(e.Message, "ErrorCode:ThrottlingException;") {
				t.Errorf("%s: 429 body %s", name, body)
			}
		}
		t.Logf("%s: %d of %d throttled at 2/s", name, throttled, n)
		if throttled == 0 {
			t.Errorf("%s: none of %d calls at once throttled at 2/s", name, n)
		}
	}
	burst("registry", 8, func() (int, []byte) { return hubREST(t, s, h, "GET", "/devices/thr-dev", "") })
	burst("twin read", 8, func() (int, []byte) { return hubREST(t, s, h, "GET", "/twins/thr-dev", "") })
	burst("twin update", 8, func() (int, []byte) {
		return hubREST(t, s, h, "PATCH", "/twins/thr-dev", `{"tags":{"n":1}}`)
	})
	burst("method", 8, func() (int, []byte) {
		return hubREST(t, s, h, "POST", "/twins/thr-dev/methods", `{"methodName":"m","responseTimeoutInSeconds":5}`)
	})
	client := s.HTTPClient()
	burst("device d2c", 8, func() (int, []byte) { return sendHTTPS(t, client, h, "thr-dev", key) })

	t.Run("mqtt twin read", func(t *testing.T) {
		time.Sleep(time.Second)
		c := connectMQTT(t, s, h, "thr-dev", key)
		res := make(chan string, 16)
		subscribe(t, c, "$iothub/twin/res/#", 0, res2chan(res))
		for i := range 6 {
			c.Publish(fmt.Sprintf("$iothub/twin/GET/?$rid=%d", i), 0, false, "")
		}
		got := map[string]int{}
		timeout := time.After(10 * time.Second)
		for n := 0; n < 6; n++ {
			select {
			case topic := <-res:
				got[strings.SplitN(strings.TrimPrefix(topic, "$iothub/twin/res/"), "/", 2)[0]]++
			case <-timeout:
				t.Fatalf("twin responses %v of 6", got)
			}
		}
		t.Logf("twin GET over MQTT, 6 at once at 2/s: statuses %v", got)
		if got["429"] == 0 || got["200"] == 0 {
			t.Errorf("twin responses %v: want some 200 and some 429", got)
		}
		if !c.IsConnectionOpen() {
			t.Errorf("the connection closed on a throttled twin request")
		}
	})

	m := scrapeMetrics(t, s)
	for _, kind := range []string{"registry", "twin_read", "twin_update", "method", "device_d2c"} {
		if v := m[`outpost_throttled_total{kind="`+kind+`"}`]; v == 0 {
			t.Errorf("outpost_throttled_total{kind=%q} is %v", kind, v)
		}
	}
}

// TestDeviceConnectionCap: past --max-device-connections a CONNECT flood
// gets CONNACK 3 (server unavailable), the devices already connected keep
// working, and memory does not follow the flood (RSS is logged; only the
// functional behaviour is asserted).
func TestDeviceConnectionCap(t *testing.T) {
	const limit = 5
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.MaxDeviceConnections = limit }))
	h := createHub(t, s, "rg-conn-cap")
	var devs []paho.Client
	for i := range limit {
		id := fmt.Sprintf("cap-%d", i)
		devs = append(devs, connectMQTT(t, s, h, id, createDevice(t, s, h, id)))
	}
	// Three rounds of the flood: memory that follows the flood would grow
	// with each; a bounded node levels off after the first (the heap's
	// high-water mark, and the race detector's shadow of it, stay mapped).
	const flood, rounds = 200, 3
	counts := map[byte]int{}
	rss := []int{settledRSSKiB()}
	goroutines := runtime.NumGoroutine()
	for range rounds {
		for c, n := range connectFlood(t, s, h, flood) {
			counts[c] += n
		}
		rss = append(rss, settledRSSKiB())
	}
	t.Logf("%d rounds of %d CONNECTs beyond a cap of %d: return codes %v; RSS (KiB) before and after each round %v; goroutines %d before, %d after",
		rounds, flood, limit, counts, rss, goroutines, runtime.NumGoroutine())
	if counts[3] != rounds*flood {
		t.Errorf("CONNACK return codes %v, want %d × 3 (server unavailable)", counts, rounds*flood)
	}
	for i, c := range devs {
		publishQoS1(t, c, fmt.Sprintf("cap-%d", i), fmt.Sprintf("after-%d", i), `{}`)
	}
	m := scrapeMetrics(t, s)
	if m["outpost_mqtt_connections"] != limit || m[`outpost_mqtt_connections_refused_total{code="3"}`] != rounds*flood {
		t.Errorf("metrics: connections %v, refused(3) %v", m["outpost_mqtt_connections"], m[`outpost_mqtt_connections_refused_total{code="3"}`])
	}
	if m[`outpost_mqtt_publishes_acknowledged_total{kind="telemetry"}`] < limit {
		t.Errorf("metrics: acknowledged telemetry %v", m[`outpost_mqtt_publishes_acknowledged_total{kind="telemetry"}`])
	}
	t.Run("amqp at the cap", func(t *testing.T) {
		key := createDevice(t, s, h, "cap-amqp")
		token, _ := sas.Sign(h.HostName+"/devices/cap-amqp", key, "", time.Now().Add(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := goamqp.Dial(ctx, "amqps://"+net.JoinHostPort(s.IP, "5671"), &goamqp.ConnOptions{
			HostName: h.HostName, TLSConfig: &tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName},
			SASLType: goamqp.SASLTypePlain("cap-amqp@sas."+h.Name, token)})
		if err == nil {
			defer conn.Close()
			_, err = conn.NewSession(ctx, nil)
		}
		t.Logf("AMQP device connection at the cap: %v", err)
		if err == nil || !strings.Contains(err.Error(), "server-busy") {
			t.Errorf("AMQP device connection at the cap: %v, want com.microsoft:server-busy", err)
		}
	})
	devs[0].Disconnect(100)
	eventually(t, 5*time.Second, func() bool { return scrapeMetrics(t, s)["outpost_mqtt_connections"] == limit-1 }, "a freed slot")
	connectMQTT(t, s, h, "cap-new", createDevice(t, s, h, "cap-new"))
}

// TestInFlightCap: past --max-inflight-requests a request is answered 503
// in its API's error shape (IoT Hub data plane, ARM) while health checks
// still answer, and requests are served again once the slots free up.
func TestInFlightCap(t *testing.T) {
	const limit = 3
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.HTTP.MaxInFlight = limit }))
	h := createHub(t, s, "rg-inflight")
	key := createDevice(t, s, h, "slow-dev")
	op := armCall{t, s, s.Token(t, testserver.ARMResource)} // before the slots fill: a token is a request too
	// Each method call holds its request slot until the device answers, and
	// the device answers only after the checks: the slots are held for as
	// long as the test needs them, however slow the machine.
	dev := connectMQTT(t, s, h, "slow-dev", key)
	calls := make(chan paho.Message, limit)
	subscribe(t, dev, "$iothub/methods/POST/#", 0, calls)
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hubREST(t, s, h, "POST", "/twins/slow-dev/methods", `{"methodName":"hold","responseTimeoutInSeconds":60}`)
		}()
	}
	var rids []string
	for range limit {
		select {
		case m := <-calls:
			_, rid, _ := strings.Cut(m.Topic(), "?$rid=")
			rids = append(rids, rid)
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d method calls reached the device", len(rids), limit)
		}
	}
	code, body := hubREST(t, s, h, "GET", "/devices/slow-dev", "")
	if code != http.StatusServiceUnavailable {
		t.Errorf("registry read while the slots are held: %d %s, want 503", code, body)
	}
	var e struct{ Message string }
	if json.Unmarshal(body, &e) != nil || !strings.HasPrefix(e.Message, "ErrorCode:ServerBusy;") {
		t.Errorf("IoT Hub 503 body %s", body)
	}
	armCode, armBody := op.do("GET", "/subscriptions/"+s.App.Installation().SubscriptionID+"/resourcegroups?api-version=2021-04-01", "")
	if errObj, _ := armBody["error"].(map[string]any); armCode != http.StatusServiceUnavailable || errObj["code"] != "ServerBusy" {
		t.Errorf("ARM while busy: %d %v", armCode, armBody)
	}
	resp, err := s.HTTPClient().Get(s.Endpoint + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz while busy: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, rid := range rids {
		dev.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{}`)
	}
	wg.Wait()
	if code, body := hubREST(t, s, h, "GET", "/devices/slow-dev", ""); code != 200 {
		t.Errorf("after the slots freed: %d %s", code, body)
	}
	if v := scrapeMetrics(t, s)["outpost_http_requests_refused_busy_total"]; v < 1 {
		t.Errorf("outpost_http_requests_refused_busy_total %v", v)
	}
}

// connectFlood sends n CONNECTs at once to s (with a password nothing
// accepts: the cap is checked first) and counts the CONNACK return codes
// (0xfe: none within 15 s).
func connectFlood(t *testing.T, s *testserver.Server, h testHub, n int) map[byte]int {
	var wg sync.WaitGroup
	codes := make(chan byte, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("flood-%d", i)
			opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
				SetClientID(id).SetUsername(h.HostName + "/" + id + "/?api-version=2021-04-12").SetPassword("SharedAccessSignature sr=x&sig=y&se=1").
				SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).
				SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
			c := paho.NewClient(opts)
			tok := c.Connect()
			if !tok.WaitTimeout(15 * time.Second) {
				codes <- 0xfe
				return
			}
			if tok.Error() == nil {
				c.Disconnect(0)
			}
			codes <- tok.(*paho.ConnectToken).ReturnCode()
		}()
	}
	wg.Wait()
	close(codes)
	counts := map[byte]int{}
	for c := range codes {
		counts[c]++
	}
	return counts
}

// sendHTTPS sends one telemetry message over the HTTPS device API with
// client (a node's) and returns the status and body.
func sendHTTPS(t *testing.T, client *http.Client, h testHub, device, key string) (int, []byte) {
	token, _ := sas.Sign(h.HostName+"/devices/"+device, key, "", time.Now().Add(time.Hour))
	req, _ := http.NewRequest("POST", "https://"+h.HostName+"/devices/"+device+"/messages/events?api-version=2021-04-12", strings.NewReader(`{}`))
	req.Header.Set("Authorization", token)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("telemetry: %v", err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// scrapeMetrics reads a node's /metrics into series → value.
func scrapeMetrics(t *testing.T, s *testserver.Server) map[string]float64 {
	t.Helper()
	resp, err := s.HTTPClient().Get(s.Endpoint + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// settledRSSKiB is this process's resident set (the server runs in it,
// and so do the test's clients) after a collection has returned freed
// memory to the system; 0 where /proc is not there.
func settledRSSKiB() int {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

func eventually(t *testing.T, within time.Duration, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// res2chan passes the topics of received messages on.
func res2chan(ch chan string) chan paho.Message {
	msgs := make(chan paho.Message, cap(ch))
	go func() {
		for m := range msgs {
			ch <- m.Topic()
		}
	}()
	return msgs
}
