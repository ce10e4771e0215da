package bench

// AMQP 1.0 throughput, the two figures issue #10 sets goals for (≥ 50,000
// events/s each on the 2-core reference machine), measured, never asserted:
//
//   - BenchmarkAMQPBuiltInReceive: reading device telemetry from an IoT
//     hub's built-in Event Hubs-compatible endpoint, with the unmodified
//     @azure/event-hubs consumer (test/clients/bench/eventhubs-receive.mjs,
//     a process of its own) and with azeventhubs v2 partition clients (in
//     this process);
//   - BenchmarkAMQPEventHubsSend: azeventhubs v2 ProducerClient sending
//     1,000-event batches to an embedded event hub, four senders (one per
//     partition) and one, beside the REST batch send for comparison.
//
// Outpost runs in this process (testserver.Start) on a loopback address of
// its own, holding 443 and AMQP's 5671 there, with the hosts the clients
// dial mapped in /etc/hosts; both need root and the benchmarks are skipped
// without it. Run them alone, each case three times, and report medians:
//
//	go test -run '^$' -bench 'AMQP' -benchtime 1x -count 3 -timeout 30m ./test/bench/
//
// What the metrics mean:
//
//   - events/s: events over the clock of the read or send itself. For node
//     it is the script's own clock (subscribe to the last event; node's
//     start-up is in ns/op but not here); for Go, from the first
//     ReceiveEvents or send to the last event.
//   - cpu-µs/event: user+system CPU of this test process per event, over
//     the same window. In the node cases this process is the server alone
//     (the client is node, reported as client-cpu-µs/event); in the Go
//     cases it is the server and the Go client together.
//   - reconnects: connections the client opened beyond the first (node:
//     TLS connections; Go: azeventhubs' "Creating new client"), summed
//     over the iterations. The SDKs reconnect by themselves after a
//     connection error, on the clock.
//   - errors, duplicates (node): what the SDK passed to processError (each
//     is logged, with the end of node's stderr — set
//     AZURE_LOG_LEVEL=warning to have the SDK say more) and events it
//     delivered twice.
//   - nproc, load1: the CPUs this process may use and the 1-minute load
//     average when the case started; the CPU model is in go test's header.
//
// OUTPOST_BENCH_CPUPROFILE=DIR writes a CPU profile of this process for the
// timed window of each case to DIR/{case}.pprof (without the preload, which
// -cpuprofile would include); in the node cases that is a profile of the
// server alone. OUTPOST_BENCH_AMQP_EVENTS changes how many events each case
// reads or sends (default 200,000).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

const (
	iotHubAPI   = "2023-06-30"
	eventHubAPI = "2024-01-01"
	// benchBatch is how many events a send batch or a Go ReceiveEvents call
	// holds.
	benchBatch = 1000
	// benchDevices is how many devices the preloaded telemetry comes from,
	// spread over the hub's partitions as IoT Hub spreads devices.
	benchDevices = 1000
)

// amqpBenchEvents is how many events each case reads or sends.
func amqpBenchEvents(b testing.TB) int {
	b.Helper()
	v := os.Getenv("OUTPOST_BENCH_AMQP_EVENTS")
	if v == "" {
		return 200_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("OUTPOST_BENCH_AMQP_EVENTS=%q: not a positive integer", v)
	}
	return n
}

// BenchmarkAMQPBuiltInReceive preloads device messages into a hub's
// telemetry stream (straight into JetStream, as the MQTT and AMQP device
// transports store them: same partitioning, system and application
// properties) and times reading all of them from the hub's built-in
// endpoint, each iteration from the earliest position again. Every reader
// checks that it got each preloaded message of its partitions once.
func BenchmarkAMQPBuiltInReceive(b *testing.B) {
	logMachine(b)
	s := testserver.Start(b)
	s.Require443(b)
	h := createBenchHub(b, s)
	total := amqpBenchEvents(b)
	pl := preloadTelemetry(b, s, h, total)
	b.Logf("preloaded %d events of %d-byte bodies from %d devices over %d partitions %v",
		total, len(telemetryBody(0, 0)), benchDevices, h.partitions, pl.perPartition)

	node := []struct {
		name                   string
		events                 int
		maxBatchSize, prefetch int
	}{
		// What a quickstart runs: subscribe's defaults, maxBatchSize 1 and
		// a prefetch of 3. The SDK waits 20 ms after the first event of
		// every batch it has to wait for, so this reads a fiftieth of the
		// events: it is slow whatever the server does.
		{"node/defaults", max(total/50, 1), 0, 0},
		{"node/maxBatchSize=1000", total, 1000, 0},
	}
	for _, c := range node {
		b.Run(c.name, func(b *testing.B) {
			script, nodeBin := nodeScript(b, "eventhubs-receive.mjs")
			env := append(os.Environ(),
				"NODE_EXTRA_CA_CERTS="+s.CAFile,
				"EVENTHUB_CONNECTION_STRING="+h.builtInConnectionString(),
				"EXPECTED_EVENTS="+strconv.Itoa(c.events),
				"TIMEOUT_SECONDS=180")
			if c.maxBatchSize > 0 {
				env = append(env, "MAX_BATCH_SIZE="+strconv.Itoa(c.maxBatchSize))
			}
			if c.prefetch > 0 {
				env = append(env, "PREFETCH_COUNT="+strconv.Itoa(c.prefetch))
			}
			t := newTally()
			for b.Loop() {
				t.add(receiveWithNode(b, nodeBin, script, env, c.events))
			}
			t.report(b)
		})
	}

	// The server's own read path without AMQP: telemetry.ReadPartition,
	// which the built-in endpoint's receivers call, one goroutine per
	// partition. What the AMQP cases lose against it is the AMQP side's.
	b.Run("in-process/ReadPartition", func(b *testing.B) {
		t := newTally()
		for b.Loop() {
			t.add(readInProcess(b, s, h, pl))
		}
		t.report(b)
	})

	for _, prefetch := range []int32{0, 3000} {
		name := "go/prefetch=default"
		if prefetch != 0 {
			name = fmt.Sprint("go/prefetch=", prefetch)
		}
		b.Run(name, func(b *testing.B) {
			t := newTally()
			for b.Loop() {
				t.add(receiveWithGo(b, s, h, pl, prefetch))
			}
			t.report(b)
		})
	}
}

// receiveWithNode runs the @azure/event-hubs script once. Its clock is
// its own; this process's CPU is measured around the whole node process,
// which is this process's share (the server's) of the read.
func receiveWithNode(b *testing.B, node, script string, env []string, expected int) sample {
	b.Helper()
	w := startWindow(b)
	r := runNodeReceive(b, node, script, env)
	_, cpuMS := w.end()
	if r.Events < expected {
		b.Fatalf("node read %d of %d events", r.Events, expected)
	}
	// The SDK recovers from these by itself; the time it took is in the
	// figure, and what happened is in the log.
	for _, e := range r.Errors {
		b.Logf("processError: %s", e)
	}
	return sample{events: r.Events, seconds: r.Seconds, cpuMS: cpuMS, clientCPUMS: r.ClientCPUSeconds * 1000,
		connections: r.Connections, errors: len(r.Errors), duplicates: r.Duplicates, node: true}
}

// receiveWithGo reads every partition from the earliest position with one
// azeventhubs partition client per partition, each in a goroutine of its
// own, in ReceiveEvents calls of up to benchBatch events, from the first
// call to the last event.
func receiveWithGo(b *testing.B, s *testserver.Server, h benchHub, pl preload, prefetch int32) sample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	connsBefore := countGoConnections()
	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(h.builtInConnectionString(), "",
		azeventhubs.DefaultConsumerGroup, &azeventhubs.ConsumerClientOptions{
			TLSConfig: amqpTLS(s, h.eventsHost), CustomEndpoint: s.IP, RetryOptions: benchRetry})
	if err != nil {
		b.Fatal(err)
	}
	defer consumer.Close(context.Background()) //nolint:errcheck // nothing to do about it
	// Connect and authorize before the clock starts, as node does with
	// getPartitionIds.
	if _, err := consumer.GetEventHubProperties(ctx, nil); err != nil {
		b.Fatalf("GetEventHubProperties: %v", err)
	}
	w := startWindow(b)
	read, err := fanOut(len(pl.perPartition), func(p int) (int, error) {
		return receivePartition(ctx, consumer, pl, p, prefetch)
	})
	seconds, cpuMS := w.end()
	if err != nil {
		b.Fatal(err)
	}
	return sample{events: read, seconds: seconds, cpuMS: cpuMS, connections: countGoConnections() - connsBefore}
}

// receivePartition reads partition p from its earliest event until it has
// every event preloaded there. A partition that gets nothing for
// stallTimeout while events are missing fails, naming them.
func receivePartition(ctx context.Context, consumer *azeventhubs.ConsumerClient, pl preload, p int, prefetch int32) (int, error) {
	id := strconv.Itoa(p)
	pc, err := consumer.NewPartitionClient(id, &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}, Prefetch: prefetch})
	if err != nil {
		return 0, fmt.Errorf("partition %s: %w", id, err)
	}
	defer pc.Close(context.Background()) //nolint:errcheck // nothing to do about it
	want := pl.perPartition[p]
	seen := make(map[int]bool, want)
	got := 0
	for got < want {
		callCtx, cancel := context.WithTimeout(ctx, stallTimeout)
		events, err := pc.ReceiveEvents(callCtx, min(benchBatch, want-got), nil)
		cancel()
		got += len(events)
		for _, ev := range events {
			if seq, ok := seqProperty(ev.Properties["seq"]); ok {
				seen[seq] = true
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && len(events) > 0 && ctx.Err() == nil:
			// The call's own deadline with some events: go on.
		case errors.Is(err, context.DeadlineExceeded):
			return got, fmt.Errorf("partition %s: nothing for %s after %d of %d events (%d distinct); %s",
				id, stallTimeout, got, want, len(seen), pl.describeMissing(p, seen))
		default:
			return got, fmt.Errorf("partition %s: ReceiveEvents after %d of %d events: %w", id, got, want, err)
		}
	}
	if len(seen) != want {
		return got, fmt.Errorf("partition %s: %d events but %d distinct of %d; %s", id, got, len(seen), want, pl.describeMissing(p, seen))
	}
	return got, nil
}

// stallTimeout is how long a reader may get nothing while events it should
// read are missing.
const stallTimeout = 30 * time.Second

// seqProperty is the application property "seq" as the AMQP clients
// return it (a string, as the device sent it).
func seqProperty(v any) (int, bool) {
	str, ok := v.(string)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(str)
	return n, err == nil
}

// readInProcess reads every partition of the hub's built-in endpoint from
// its start through telemetry.ReadPartition, one goroutine per partition.
func readInProcess(b *testing.B, s *testserver.Server, h benchHub, pl preload) sample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errEnough := errors.New("read enough")
	w := startWindow(b)
	read, err := fanOut(len(pl.perPartition), func(p int) (int, error) {
		want := pl.perPartition[p]
		if want == 0 {
			return 0, nil
		}
		seen := make(map[int]bool, want)
		n := 0
		err := s.App.Telemetry().ReadPartition(ctx, h.name, p, telemetry.Start{Policy: jetstream.DeliverAllPolicy},
			func(m telemetry.Message) error {
				if seq, err := strconv.Atoi(m.App["seq"]); err == nil {
					seen[seq] = true
				}
				if n++; n == want {
					return errEnough
				}
				return nil
			})
		if !errors.Is(err, errEnough) || len(seen) != want {
			return n, fmt.Errorf("partition %d: read %d of %d events (%d distinct): %v; %s",
				p, n, want, len(seen), err, pl.describeMissing(p, seen))
		}
		return n, nil
	})
	seconds, cpuMS := w.end()
	if err != nil {
		b.Fatal(err)
	}
	return sample{events: read, seconds: seconds, cpuMS: cpuMS}
}

// BenchmarkAMQPEventHubsSend sends events of 100-byte bodies with two
// application properties to an embedded event hub of four partitions (a
// new one for each iteration, so every send starts empty), in batches of
// benchBatch: with azeventhubs over AMQP from four goroutines (one per
// partition) and from one (no partition given: the service chooses), and
// the same four-sender load through the REST batch send
// (application/vnd.microsoft.servicebus.json, one partition each).
func BenchmarkAMQPEventHubsSend(b *testing.B) {
	logMachine(b)
	s := testserver.Start(b)
	s.Require443(b)
	ns := createBenchNamespace(b, s)
	total := amqpBenchEvents(b)

	cases := []struct {
		name    string
		senders int
		send    func(*testing.B, *testserver.Server, benchNamespace, string, int, int) sample
	}{
		{"amqp/senders=4", 4, sendWithGo},
		{"amqp/senders=1", 1, sendWithGo},
		{"rest/senders=4", 4, sendWithREST},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			t := newTally()
			for b.Loop() {
				t.add(c.send(b, s, ns, ns.createEventHub(b, s), c.senders, total))
			}
			t.report(b)
		})
	}
}

// sendWithGo sends total events with one ProducerClient from senders
// goroutines; with more than one, goroutine i sends to partition i.
func sendWithGo(b *testing.B, s *testserver.Server, ns benchNamespace, hubName string, senders, total int) sample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	connsBefore := countGoConnections()
	producer, err := azeventhubs.NewProducerClientFromConnectionString(ns.connectionString(), hubName,
		&azeventhubs.ProducerClientOptions{TLSConfig: amqpTLS(s, ns.host), CustomEndpoint: s.IP, RetryOptions: benchRetry})
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close(context.Background()) //nolint:errcheck // nothing to do about it
	props, err := producer.GetEventHubProperties(ctx, nil)
	if err != nil {
		b.Fatalf("GetEventHubProperties: %v", err)
	}
	if senders > 1 && senders > len(props.PartitionIDs) {
		b.Fatalf("%d senders for %d partitions", senders, len(props.PartitionIDs))
	}
	// The events are built once; each batch encodes them again, as a
	// producer does.
	events := make([]*azeventhubs.EventData, benchBatch)
	for i := range events {
		events[i] = &azeventhubs.EventData{
			Body:        telemetryBody(i%benchDevices, i),
			ContentType: to.Ptr("application/json"),
			Properties:  map[string]any{"temperatureAlert": "false", "seq": int64(i)},
		}
	}
	options := func(i int) *azeventhubs.EventDataBatchOptions {
		if senders == 1 {
			return &azeventhubs.EventDataBatchOptions{}
		}
		return &azeventhubs.EventDataBatchOptions{PartitionID: &props.PartitionIDs[i]}
	}
	// Open the sender links before the clock starts (one per partition, or
	// the one to the event hub).
	for i := range senders {
		if err := sendBatch(ctx, producer, options(i), events[:1]); err != nil {
			b.Fatal(err)
		}
	}
	w := startWindow(b)
	sent, err := fanOut(senders, func(i int) (int, error) {
		return sendShare(share(total, senders, i), func(n int) error {
			return sendBatch(ctx, producer, options(i), events[:n])
		})
	})
	seconds, cpuMS := w.end()
	if err != nil {
		b.Fatal(err)
	}
	return sample{events: sent, seconds: seconds, cpuMS: cpuMS, connections: countGoConnections() - connsBefore}
}

// share is sender i's part of total events split over senders.
func share(total, senders, i int) int {
	n := total / senders
	if i < total%senders {
		n++
	}
	return n
}

// sendShare sends n events in batches of up to benchBatch with send,
// stopping at the first error, and returns how many were sent.
func sendShare(n int, send func(batch int) error) (int, error) {
	sent := 0
	for sent < n {
		k := min(benchBatch, n-sent)
		if err := send(k); err != nil {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}

// sendBatch sends events as one batch; they must fit in one.
func sendBatch(ctx context.Context, producer *azeventhubs.ProducerClient, opts *azeventhubs.EventDataBatchOptions, events []*azeventhubs.EventData) error {
	batch, err := producer.NewEventDataBatch(ctx, opts)
	if err != nil {
		return fmt.Errorf("NewEventDataBatch: %w", err)
	}
	for i, ev := range events {
		if err := batch.AddEventData(ev, nil); err != nil {
			return fmt.Errorf("AddEventData %d of %d (batch of %d bytes): %w", i, len(events), batch.NumBytes(), err)
		}
	}
	if err := producer.SendEventDataBatch(ctx, batch, nil); err != nil {
		return fmt.Errorf("SendEventDataBatch: %w", err)
	}
	return nil
}

// sendWithREST posts total events as JSON batches of benchBatch events to
// /{eventhub}/partitions/{i}/messages from senders goroutines, with a SAS
// token of the namespace's root rule, over the server's HTTPS client.
func sendWithREST(b *testing.B, s *testserver.Server, ns benchNamespace, hubName string, senders, total int) sample {
	b.Helper()
	type item struct {
		Body           string         `json:"Body"`
		UserProperties map[string]any `json:"UserProperties"`
	}
	items := make([]item, benchBatch)
	for i := range items {
		items[i] = item{Body: string(telemetryBody(i%benchDevices, i)),
			UserProperties: map[string]any{"temperatureAlert": "false", "seq": i}}
	}
	token := sas.SignRawKey("https://"+ns.host+"/"+hubName, ns.key, "RootManageSharedAccessKey", time.Now().Add(time.Hour))
	client := s.HTTPClient()
	// Each batch is encoded when it is sent, as a client would.
	post := func(partition, n int) error {
		body, err := json.Marshal(items[:n])
		if err != nil {
			return err
		}
		u := fmt.Sprintf("https://%s/%s/partitions/%d/messages", ns.host, hubName, partition)
		req, err := http.NewRequest("POST", u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/vnd.microsoft.servicebus.json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("POST %s: %w", u, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST %s: %s %s", u, resp.Status, raw)
		}
		return nil
	}
	for i := range senders {
		if err := post(i, 1); err != nil {
			b.Fatal(err)
		}
	}
	w := startWindow(b)
	sent, err := fanOut(senders, func(i int) (int, error) {
		return sendShare(share(total, senders, i), func(n int) error { return post(i, n) })
	})
	seconds, cpuMS := w.end()
	if err != nil {
		b.Fatal(err)
	}
	return sample{events: sent, seconds: seconds, cpuMS: cpuMS}
}

// fanOut runs fn(i) for every i below n, each in a goroutine of its own,
// and returns the sum of their counts and their errors joined.
func fanOut(n int, fn func(i int) (int, error)) (int, error) {
	counts := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { counts[i], errs[i] = fn(i) })
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, errors.Join(errs...)
}

// sample is one timed read or send.
type sample struct {
	events  int
	seconds float64
	// cpuMS is this process's CPU over the window; clientCPUMS node's own.
	cpuMS, clientCPUMS float64
	// connections the client opened (1 when it never reconnected); 0 when
	// not known.
	connections        int
	errors, duplicates int
	node               bool
}

// tally sums a case's samples and reports them, with the machine.
type tally struct {
	machine machine
	sum     sample
	n       int
}

func newTally() *tally { return &tally{machine: machineMetrics()} }

func (t *tally) add(s sample) {
	t.n++
	t.sum.events += s.events
	t.sum.seconds += s.seconds
	t.sum.cpuMS += s.cpuMS
	t.sum.clientCPUMS += s.clientCPUMS
	t.sum.connections += s.connections
	t.sum.errors += s.errors
	t.sum.duplicates += s.duplicates
	t.sum.node = t.sum.node || s.node
}

func (t *tally) report(b *testing.B) {
	events := float64(t.sum.events)
	b.ReportMetric(events/t.sum.seconds, "events/s")
	b.ReportMetric(t.sum.cpuMS*1000/events, "cpu-µs/event")
	if t.sum.node {
		b.ReportMetric(t.sum.clientCPUMS*1000/events, "client-cpu-µs/event")
		b.ReportMetric(float64(t.sum.errors), "errors")
		b.ReportMetric(float64(t.sum.duplicates), "duplicates")
	}
	if t.sum.connections > 0 {
		b.ReportMetric(float64(t.sum.connections-t.n), "reconnects")
	}
	b.ReportMetric(t.machine.nproc, "nproc")
	b.ReportMetric(t.machine.load1, "load1")
}

// window is the timed part of a sample: wall time, this process's CPU and,
// when asked for, its CPU profile.
type window struct {
	start       time.Time
	cpuMS       float64
	stopProfile func()
}

func startWindow(b *testing.B) window {
	stop := profileWindow(b)
	return window{start: time.Now(), cpuMS: ownCPUTime(), stopProfile: stop}
}

func (w window) end() (seconds, cpuMS float64) {
	seconds, cpuMS = time.Since(w.start).Seconds(), ownCPUTime()-w.cpuMS
	w.stopProfile()
	return seconds, cpuMS
}

// goConnections counts the AMQP connections azeventhubs opens in this
// process, from its "Creating new client" log line (one per connection and
// per reconnect).
var (
	goConnections  atomic.Int64
	listenToGoSDKs sync.Once
)

// countGoConnections returns the count so far, listening to the SDK's log
// from the first call on. AZURE_SDK_GO_LOGGING, which the listener
// replaces, still prints everything to stderr.
func countGoConnections() int {
	listenToGoSDKs.Do(func() {
		echo := os.Getenv("AZURE_SDK_GO_LOGGING") != ""
		azlog.SetListener(func(ev azlog.Event, msg string) {
			if ev == azeventhubs.EventConn && strings.HasPrefix(msg, "Creating new client") {
				goConnections.Add(1)
			}
			if echo {
				fmt.Fprintf(os.Stderr, "[%s] %s: %s\n", time.Now().Format(time.StampMicro), ev, msg)
			}
		})
	})
	return int(goConnections.Load())
}

// benchRetry keeps SDK retries few and short: a server that answers wrongly
// should fail the benchmark, not hide in its time.
var benchRetry = azeventhubs.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}

// amqpTLS trusts the server's CA and checks its certificate for host. The
// Go SDK dials the server's address (CustomEndpoint), not the host name:
// Go's resolver caches /etc/hosts, so a name just mapped may not resolve
// yet in this process.
func amqpTLS(s *testserver.Server, host string) *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), ServerName: host, MinVersion: tls.VersionTLS12}
}

// benchHub is an IoT hub and its built-in endpoint.
type benchHub struct {
	name, id   string
	ownerKey   string
	eventsHost string // the built-in endpoint's namespace host
	eventsPath string // its event hub (EntityPath)
	partitions int
}

// builtInConnectionString is what the portal's "Built-in endpoints" blade
// shows, with the iothubowner key.
func (h benchHub) builtInConnectionString() string {
	return "Endpoint=sb://" + h.eventsHost + "/;SharedAccessKeyName=iothubowner;SharedAccessKey=" + h.ownerKey + ";EntityPath=" + h.eventsPath
}

// createBenchHub creates resource group rg-bench-amqp and an S1 hub in it
// through the resource manager, waits until it is provisioned, reads its
// iothubowner key and built-in endpoint, and maps the endpoint's host.
func createBenchHub(b *testing.B, s *testserver.Server) benchHub {
	b.Helper()
	arm := operatorARM(b, s)
	group := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourcegroups/rg-bench-amqp"
	arm.call("PUT", group+"?api-version="+groupAPI, `{"location":"westus"}`, nil)
	h := benchHub{name: "benchhub-amqp"}
	h.id = group + "/providers/Microsoft.Devices/IotHubs/" + h.name
	arm.call("PUT", h.id+"?api-version="+iotHubAPI, `{"location":"westus","sku":{"name":"S1","capacity":1}}`, nil)
	var doc struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
			EventHubEndpoints struct {
				Events struct {
					Endpoint       string `json:"endpoint"`
					Path           string `json:"path"`
					PartitionCount int    `json:"partitionCount"`
				} `json:"events"`
			} `json:"eventHubEndpoints"`
		} `json:"properties"`
	}
	waitSucceeded(b, arm, h.id, iotHubAPI, &doc.Properties.ProvisioningState, &doc)
	events := doc.Properties.EventHubEndpoints.Events
	u, err := url.Parse(events.Endpoint)
	if err != nil || u.Scheme != "sb" || u.Host == "" || events.Path == "" || events.PartitionCount < 1 {
		b.Fatalf("hub %s: built-in endpoint %+v", h.name, events)
	}
	h.eventsHost, h.eventsPath, h.partitions = u.Host, events.Path, events.PartitionCount
	var keys struct {
		Value []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
		} `json:"value"`
	}
	arm.call("POST", h.id+"/listkeys?api-version="+iotHubAPI, "", &keys)
	for _, k := range keys.Value {
		if k.KeyName == "iothubowner" {
			h.ownerKey = k.PrimaryKey
		}
	}
	if h.ownerKey == "" {
		b.Fatalf("hub %s: listkeys has no iothubowner key: %+v", h.name, keys)
	}
	testserver.MapHosts(b, s.IP, h.eventsHost)
	return h
}

// preload is what preloadTelemetry stored: message i carries the
// application property seq = i and comes from device i % benchDevices.
type preload struct {
	total, partitions int
	perPartition      []int
}

func deviceName(device int) string { return fmt.Sprintf("bench-device-%04d", device) }

// partitionOf is the partition message seq is stored on.
func (pl preload) partitionOf(seq int) int {
	return telemetry.Partition(deviceName(seq%benchDevices), pl.partitions)
}

// describeMissing names the messages of partition p not in seen (the first
// few) and how many there are.
func (pl preload) describeMissing(p int, seen map[int]bool) string {
	var missing []int
	count := 0
	for seq := range pl.total {
		if pl.partitionOf(seq) == p && !seen[seq] {
			if count++; len(missing) < 10 {
				missing = append(missing, seq)
			}
		}
	}
	return fmt.Sprintf("%d never arrived, seq %v", count, missing)
}

// preloadTelemetry stores total device messages on the hub's built-in
// endpoint, from benchDevices devices in turn, and returns how many landed
// on each partition. Publishes are pipelined, at most benchBatch awaiting
// JetStream's acknowledgement.
func preloadTelemetry(b *testing.B, s *testserver.Server, h benchHub, total int) preload {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	streams := s.App.Telemetry()
	perPartition := make([]int, h.partitions)
	waits := make([]func(context.Context) error, 0, benchBatch)
	flush := func() {
		for _, wait := range waits {
			if err := wait(ctx); err != nil {
				b.Fatalf("preload: %v", err)
			}
		}
		waits = waits[:0]
	}
	start := time.Now()
	for i := range total {
		device := i % benchDevices
		m := telemetry.Message{
			Hub:      h.name,
			DeviceID: deviceName(device),
			System: map[string]string{
				telemetry.PropMessageID:       fmt.Sprintf("msg-%d", i),
				telemetry.PropContentType:     "application/json",
				telemetry.PropContentEncoding: "utf-8",
				// What the device transports stamp on every message.
				telemetry.PropAuthMethod:   `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
				telemetry.PropGenerationID: "638000000000000000",
			},
			App:     map[string]string{"temperatureAlert": "false", "seq": strconv.Itoa(i)},
			Payload: telemetryBody(device, i),
		}
		wait, err := streams.PublishAsync(h.partitions, telemetry.PathBuiltIn, m)
		if err != nil {
			b.Fatalf("preload: %v", err)
		}
		perPartition[telemetry.Partition(m.DeviceID, h.partitions)]++
		if waits = append(waits, wait); len(waits) == benchBatch {
			flush()
		}
	}
	flush()
	b.Logf("preload: %d events in %.1f s", total, time.Since(start).Seconds())
	return preload{total: total, partitions: h.partitions, perPartition: perPartition}
}

// telemetryBody is a device message of exactly 100 bytes of JSON.
func telemetryBody(device, seq int) []byte {
	body := fmt.Appendf(nil, `{"deviceId":"bench-device-%04d","temperature":%.2f,"humidity":%.2f,"seq":%d,"pad":"`,
		device, 20+float64(seq%1000)/100, 40+float64(seq%3000)/100, seq)
	for len(body) < 98 {
		body = append(body, 'x')
	}
	return append(body, `"}`...)
}

// benchNamespace is an Event Hubs namespace and its root rule's key.
type benchNamespace struct {
	id, host, key string
	hubs          *int // event hubs created so far, for their names
}

func (ns benchNamespace) connectionString() string {
	return "Endpoint=sb://" + ns.host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + ns.key
}

// createBenchNamespace creates a Standard Event Hubs namespace in resource
// group rg-bench-amqp, reads its RootManageSharedAccessKey and maps its
// host.
func createBenchNamespace(b *testing.B, s *testserver.Server) benchNamespace {
	b.Helper()
	arm := operatorARM(b, s)
	group := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourcegroups/rg-bench-amqp"
	arm.call("PUT", group+"?api-version="+groupAPI, `{"location":"westus"}`, nil)
	name := "ns-bench-amqp"
	ns := benchNamespace{id: group + "/providers/Microsoft.EventHub/namespaces/" + name,
		host: name + ".servicebus." + s.Config.DNSSuffix, hubs: new(int)}
	arm.call("PUT", ns.id+"?api-version="+eventHubAPI, `{"location":"westus","sku":{"name":"Standard","tier":"Standard"}}`, nil)
	var doc struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	waitSucceeded(b, arm, ns.id, eventHubAPI, &doc.Properties.ProvisioningState, &doc)
	var keys struct {
		PrimaryKey string `json:"primaryKey"`
	}
	arm.call("POST", ns.id+"/authorizationRules/RootManageSharedAccessKey/listKeys?api-version="+eventHubAPI, "", &keys)
	if keys.PrimaryKey == "" {
		b.Fatalf("namespace %s: listKeys returned no key", name)
	}
	ns.key = keys.PrimaryKey
	testserver.MapHosts(b, s.IP, ns.host)
	return ns
}

// createEventHub creates a new event hub of four partitions in the
// namespace and returns its name.
func (ns benchNamespace) createEventHub(b *testing.B, s *testserver.Server) string {
	b.Helper()
	*ns.hubs++
	name := fmt.Sprintf("bench-%d", *ns.hubs)
	id := ns.id + "/eventhubs/" + name
	arm := operatorARM(b, s)
	arm.call("PUT", id+"?api-version="+eventHubAPI, `{"properties":{"partitionCount":4,"messageRetentionInDays":1}}`, nil)
	var doc struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	waitSucceeded(b, arm, id, eventHubAPI, &doc.Properties.ProvisioningState, &doc)
	return name
}

// operatorARM calls the resource manager as the operator.
func operatorARM(b *testing.B, s *testserver.Server) armClient {
	b.Helper()
	return armClient{b: b, client: s.HTTPClient(), endpoint: s.Endpoint, token: s.Token(b, testserver.ARMResource)}
}

// waitSucceeded GETs the resource into doc until *state (a field of doc)
// is Succeeded (or absent: a resource without provisioning), for up to
// 30 s.
func waitSucceeded(b *testing.B, arm armClient, id, api string, state *string, doc any) {
	b.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		*state = ""
		arm.call("GET", id+"?api-version="+api, "", doc)
		switch {
		case *state == "Succeeded" || *state == "":
			return
		case *state == "Failed" || time.Now().After(deadline):
			b.Fatalf("%s: provisioning state %s", id, *state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeResult is what eventhubs-receive.mjs prints.
type nodeResult struct {
	Events           int      `json:"events"`
	Seconds          float64  `json:"seconds"`
	ClientCPUSeconds float64  `json:"clientCpuSeconds"`
	Connections      int      `json:"connections"`
	Duplicates       int      `json:"duplicates"`
	Errors           []string `json:"errors"`
}

// nodeScript is the path of a script in test/clients/bench and node, or
// skips the benchmark when node or the npm clients are missing.
func nodeScript(b *testing.B, name string) (script, node string) {
	b.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node is not installed")
	}
	clients := filepath.Join(repoRoot(), "test", "clients")
	if _, err := os.Stat(filepath.Join(clients, "node_modules", "@azure", "event-hubs")); err != nil {
		b.Skip("@azure/event-hubs is not installed (cd test/clients && npm ci)")
	}
	return filepath.Join(clients, "bench", name), node
}

// runNodeReceive runs the receive script and decodes its result line.
func runNodeReceive(b *testing.B, node, script string, env []string) nodeResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("node %s: %v\n%s%s", filepath.Base(script), err, out, stderr.Bytes())
	}
	var r nodeResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); bytes.HasPrefix(line, []byte("{")) {
			if err := json.Unmarshal(line, &r); err != nil {
				b.Fatalf("node %s: %v: %s", filepath.Base(script), err, line)
			}
		}
	}
	if r.Seconds <= 0 {
		b.Fatalf("node %s printed no result:\n%s%s", filepath.Base(script), out, stderr.Bytes())
	}
	if (len(r.Errors) > 0 || r.Connections > 1) && stderr.Len() > 0 {
		// What the SDK logged about them (AZURE_LOG_LEVEL=warning).
		tail := stderr.Bytes()[max(0, stderr.Len()-4096):]
		b.Logf("node %s stderr (last %d bytes):\n%s", filepath.Base(script), len(tail), tail)
	}
	return r
}

// profileWindow starts a CPU profile of this process into
// $OUTPOST_BENCH_CPUPROFILE/{benchmark}.pprof, when that is set, and
// returns what stops it. A second window of one benchmark overwrites the
// first. When -cpuprofile is profiling the whole run, it does nothing.
func profileWindow(b *testing.B) func() {
	b.Helper()
	dir := os.Getenv("OUTPOST_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	name := strings.NewReplacer("/", "_", "=", "-").Replace(b.Name()) + ".pprof"
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Logf("no profile of this window: %v", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// machine is what a case's figures depend on besides the code: the CPUs
// this process may use (nproc) and the 1-minute load average when the case
// started (the machine is shared). The CPU model is in go test's own
// header ("cpu: …").
type machine struct{ nproc, load1 float64 }

func machineMetrics() machine {
	m := machine{nproc: float64(runtime.NumCPU()), load1: -1}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.load1 = v
			}
		}
	}
	return m
}

// logMachine records what the figures depend on: the CPUs this process
// may use (nproc), their model, and the load average when the benchmark
// starts (the machine is shared).
func logMachine(b *testing.B) {
	b.Helper()
	model := "unknown"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := "unknown"
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	b.Logf("machine: nproc=%d GOMAXPROCS=%d cpu=%q loadavg=%s %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), model, load, runtime.Version())
}
