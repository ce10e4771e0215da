package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// mode is one way to run the bus. Every behaviour test runs against each,
// so both modes keep one contract.
type mode struct {
	name string
	// config returns the config of a fresh bus nobody else uses.
	config func(t testing.TB) bus.Config
}

var modes = []mode{
	{"embedded", func(t testing.TB) bus.Config {
		return bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}
	}},
	{"external", func(t testing.TB) bus.Config {
		return bus.Config{URL: testenv.NATSURL(t), StreamPrefix: testenv.StreamPrefix(t)}
	}},
}

func forEachMode(t *testing.T, test func(t *testing.T, cfg bus.Config)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m.config(t)) })
	}
}

// testLogger shows the bus's and the server's warnings in the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openBus opens a bus that is closed when the test ends.
func openBus(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	b, err := bus.Open(testContext(t), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeBus(t, b) })
	return b
}

func closeBus(t testing.TB, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func ensureTelemetry(t testing.TB, b *bus.Bus) jetstream.Stream {
	t.Helper()
	s, err := b.EnsureStream(testContext(t), jetstream.StreamConfig{
		Name:     "telemetry",
		Subjects: []string{"telemetry.>"},
	})
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return s
}

func publish(t testing.TB, b *bus.Bus, subject, data string, want uint64) {
	t.Helper()
	seq, err := b.Publish(testContext(t), subject, []byte(data), nil)
	if err != nil {
		t.Fatalf("Publish %s: %v", subject, err)
	}
	if seq != want {
		t.Fatalf("Publish %s: seq %d, want %d", subject, seq, want)
	}
}

// fetch takes n messages from the consumer and acknowledges each durably.
func fetch(t testing.TB, c jetstream.Consumer, n int) []jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		if err := m.DoubleAck(testContext(t)); err != nil {
			t.Fatalf("DoubleAck: %v", err)
		}
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(msgs) != n {
		t.Fatalf("Fetch: got %d messages, want %d", len(msgs), n)
	}
	return msgs
}

func TestPublishConsume(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		ctx := testContext(t)
		b := openBus(t, cfg)
		stream := ensureTelemetry(t, b)

		const n = 10
		for i := range n {
			h := nats.Header{"Outpost-Device": []string{fmt.Sprintf("dev%d", i)}}
			seq, err := b.Publish(ctx, fmt.Sprintf("telemetry.hub1.dev%d", i), fmt.Appendf(nil, "payload %d", i), h)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if seq != uint64(i+1) {
				t.Fatalf("Publish: seq %d, want %d", seq, i+1)
			}
		}

		cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       "reader",
			AckPolicy:     jetstream.AckExplicitPolicy,
			FilterSubject: b.Subject("telemetry", "hub1", ">"),
		})
		if err != nil {
			t.Fatalf("CreateOrUpdateConsumer: %v", err)
		}
		for i, m := range fetch(t, cons, n) {
			if want := b.Subject(fmt.Sprintf("telemetry.hub1.dev%d", i)); m.Subject() != want {
				t.Errorf("message %d: subject %q, want %q", i, m.Subject(), want)
			}
			if want := fmt.Sprintf("payload %d", i); string(m.Data()) != want {
				t.Errorf("message %d: data %q, want %q", i, m.Data(), want)
			}
			if got, want := m.Headers().Get("Outpost-Device"), fmt.Sprintf("dev%d", i); got != want {
				t.Errorf("message %d: header %q, want %q", i, got, want)
			}
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer Info: %v", err)
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != n {
			t.Errorf("consumer after acks: ack pending %d, pending %d, ack floor %d; want 0, 0, %d",
				info.NumAckPending, info.NumPending, info.AckFloor.Stream, n)
		}
	})
}

func TestPublishWithoutStream(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		b := openBus(t, cfg)
		_, err := b.Publish(testContext(t), "nowhere.x", []byte("x"), nil)
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Fatalf("Publish without a stream: %v, want ErrNoStreamResponse", err)
		}
	})
}

// TestPublishAsyncAckNeverComes: a publish whose acknowledgement never
// arrives (here a plain subscriber takes it and says nothing, as a stream
// leader that dies mid-publish would) ends its wait with an error instead
// of holding the waiter forever.
func TestPublishAsyncAckNeverComes(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		b := openBus(t, cfg)
		sub, err := b.Conn().Subscribe(b.Subject("silent.x"), func(*nats.Msg) {})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		defer sub.Unsubscribe()
		wait, err := b.PublishAsync("silent.x", []byte("x"), nil)
		if err != nil {
			t.Fatalf("PublishAsync: %v", err)
		}
		start := time.Now()
		_, err = wait(context.Background())
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Fatalf("wait: %v, want ErrAsyncPublishTimeout", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("the wait ended after %s", took)
		}
	})
}

func TestEnsureStream(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		ctx := testContext(t)
		b := openBus(t, cfg)

		want := jetstream.StreamConfig{Name: "events", Subjects: []string{"events.>"}, MaxMsgs: 100}
		first, err := b.EnsureStream(ctx, want)
		if err != nil {
			t.Fatalf("EnsureStream: %v", err)
		}
		if want.Name != "events" || want.Subjects[0] != "events.>" {
			t.Fatalf("EnsureStream modified its argument: %+v", want)
		}
		publish(t, b, "events.a", "kept", 1)

		again, err := b.EnsureStream(ctx, want)
		if err != nil {
			t.Fatalf("EnsureStream again: %v", err)
		}
		for _, s := range []jetstream.Stream{first, again} {
			c := s.CachedInfo().Config
			if c.Name != b.Stream("events") || !slices.Equal(c.Subjects, []string{b.Subject("events.>")}) || c.MaxMsgs != 100 {
				t.Errorf("stream config: name %q subjects %q max %d; want %q %q 100",
					c.Name, c.Subjects, c.MaxMsgs, b.Stream("events"), b.Subject("events.>"))
			}
		}
		if msgs := again.CachedInfo().State.Msgs; msgs != 1 {
			t.Errorf("after a second EnsureStream: %d messages, want 1", msgs)
		}

		want.MaxMsgs = 200
		updated, err := b.EnsureStream(ctx, want)
		if err != nil {
			t.Fatalf("EnsureStream update: %v", err)
		}
		if got := updated.CachedInfo().Config.MaxMsgs; got != 200 {
			t.Errorf("after update: MaxMsgs %d, want 200", got)
		}

		// No subjects: the one subject named like the stream, prefixed.
		audit, err := b.EnsureStream(ctx, jetstream.StreamConfig{Name: "audit"})
		if err != nil {
			t.Fatalf("EnsureStream without subjects: %v", err)
		}
		if got := audit.CachedInfo().Config.Subjects; !slices.Equal(got, []string{b.Subject("audit")}) {
			t.Errorf("default subjects %q, want %q", got, b.Subject("audit"))
		}
		publish(t, b, "audit", "entry", 1)

		var names []string
		lister := b.JetStream().StreamNames(ctx)
		for name := range lister.Name() {
			if strings.HasPrefix(name, b.Prefix()+"_") {
				names = append(names, name)
			}
		}
		if err := lister.Err(); err != nil {
			t.Fatalf("StreamNames: %v", err)
		}
		slices.Sort(names)
		if want := []string{b.Stream("audit"), b.Stream("events")}; !slices.Equal(names, want) {
			t.Errorf("streams %q, want %q", names, want)
		}

		_, err = b.EnsureStream(ctx, jetstream.StreamConfig{Name: "copy", Mirror: &jetstream.StreamSource{Name: "events"}})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("EnsureStream with a mirror: %v, want ErrUnsupported", err)
		}
		if _, err := b.EnsureStream(ctx, jetstream.StreamConfig{}); err == nil {
			t.Error("EnsureStream without a name: no error")
		}
	})
}

func TestNames(t *testing.T) {
	b := openBus(t, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "Site-7"})
	for _, c := range []struct{ got, want string }{
		{b.Prefix(), "Site-7"},
		{b.Stream("telemetry"), "Site-7_telemetry"},
		{b.Subject("telemetry", "hub1", ">"), "Site-7.telemetry.hub1.>"},
		{b.Subject("telemetry.hub1"), "Site-7.telemetry.hub1"},
		{b.Subject(), "Site-7"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	def := openBus(t, bus.Config{StoreDir: t.TempDir()})
	if got, want := def.Stream("x"), bus.DefaultStreamPrefix+"_x"; got != want {
		t.Errorf("default prefix: Stream %q, want %q", got, want)
	}
}

// Installations sharing one server see only their own streams and subjects.
func TestPrefixIsolation(t *testing.T) {
	url := testenv.NATSURL(t)
	ctx := testContext(t)
	a := openBus(t, bus.Config{URL: url, StreamPrefix: testenv.StreamPrefix(t)})
	b := openBus(t, bus.Config{URL: url, StreamPrefix: testenv.StreamPrefix(t)})

	// Same logical names: without prefixes the subjects would overlap and
	// the second create would fail.
	streamA := ensureTelemetry(t, a)
	streamB := ensureTelemetry(t, b)

	sub, err := b.Conn().SubscribeSync(b.Subject(">"))
	if err != nil {
		t.Fatalf("SubscribeSync: %v", err)
	}
	defer sub.Unsubscribe()
	if err := b.Conn().Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	publish(t, a, "telemetry.dev", "from a", 1)
	publish(t, b, "telemetry.dev", "from b", 1)
	publish(t, b, "telemetry.dev", "from b", 2)

	for _, c := range []struct {
		name   string
		stream jetstream.Stream
		want   uint64
	}{{"a", streamA, 1}, {"b", streamB, 2}} {
		info, err := c.stream.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s Info: %v", c.name, err)
		}
		if info.State.Msgs != c.want {
			t.Errorf("stream %s: %d messages, want %d", c.name, info.State.Msgs, c.want)
		}
	}
	// b's subscriber sees b's two messages and nothing of a's.
	for range 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("NextMsg: %v", err)
		}
		if string(m.Data) != "from b" {
			t.Errorf("b's subscriber got %q", m.Data)
		}
	}
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("b's subscriber got an extra message %q on %s", m.Data, m.Subject)
	}
}

func TestEmbeddedPersistence(t *testing.T) {
	ctx := testContext(t)
	cfg := bus.Config{StoreDir: t.TempDir()}

	first, err := bus.Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	stream := ensureTelemetry(t, first)
	for i := range 3 {
		publish(t, first, "telemetry.dev", fmt.Sprintf("m%d", i+1), uint64(i+1))
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("CreateOrUpdateConsumer: %v", err)
	}
	fetch(t, cons, 1)
	if err := first.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := openBus(t, cfg)
	info, err := second.JetStream().Stream(ctx, second.Stream("telemetry"))
	if err != nil {
		t.Fatalf("Stream after reopen: %v", err)
	}
	if st := info.CachedInfo().State; st.Msgs != 3 || st.LastSeq != 3 {
		t.Fatalf("after reopen: %d messages, last seq %d; want 3, 3", st.Msgs, st.LastSeq)
	}
	publish(t, second, "telemetry.dev", "m4", 4)

	// The durable consumer kept its ack floor: m1 is not delivered again.
	cons, err = second.JetStream().Consumer(ctx, second.Stream("telemetry"), "reader")
	if err != nil {
		t.Fatalf("Consumer after reopen: %v", err)
	}
	var got []string
	for _, m := range fetch(t, cons, 3) {
		got = append(got, string(m.Data()))
	}
	if want := []string{"m2", "m3", "m4"}; !slices.Equal(got, want) {
		t.Errorf("after reopen consumed %q, want %q", got, want)
	}
}

func TestCloseBoundedByContext(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		b, err := bus.Open(testContext(t), cfg, testLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		stream := ensureTelemetry(t, b)
		cons, err := stream.CreateOrUpdateConsumer(testContext(t), jetstream.ConsumerConfig{Durable: "stuck", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("CreateOrUpdateConsumer: %v", err)
		}
		// A handler that never returns on its own keeps the drain from
		// finishing (nats.go would wait its 30 s DrainTimeout).
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		var once sync.Once
		defer once.Do(func() { close(release) })
		cc, err := cons.Consume(func(m jetstream.Msg) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		})
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		defer cc.Stop()
		publish(t, b, "telemetry.dev", "x", 1)
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("handler never ran")
		}

		const deadline = 200 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		err = b.Close(ctx)
		elapsed := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a stuck drain: %v, want DeadlineExceeded", err)
		}
		if elapsed > deadline+time.Second {
			t.Errorf("Close took %s with a %s deadline", elapsed, deadline)
		}
		once.Do(func() { close(release) })

		// A second Close waits for the rest of the shutdown.
		closeBus(t, b)
		if err := b.Ready(testContext(t)); err == nil {
			t.Error("Ready after Close: no error")
		}
	})
}

func TestCloseCancelledContext(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		b, err := bus.Open(testContext(t), cfg, testLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		if err := b.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Close with a cancelled context: %v", err)
		}
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Close with a cancelled context took %s", elapsed)
		}
		closeBus(t, b)
		closeBus(t, b) // idempotent
	})
}

func TestReadyFailsAfterClose(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		ctx := testContext(t)
		b, err := bus.Open(ctx, cfg, testLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		ensureTelemetry(t, b)
		if err := b.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		closeBus(t, b)
		if err := b.Ready(ctx); !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("Ready after Close: %v, want ErrConnectionClosed", err)
		}
		if _, err := b.Publish(ctx, "telemetry.dev", []byte("late"), nil); err == nil {
			t.Error("Publish after Close: no error")
		}
	})
}

func TestOpenFails(t *testing.T) {
	ctx := testContext(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  bus.Config
		want []string // substrings of the error
	}{
		{"every config problem at once", bus.Config{StreamPrefix: "a.b"}, []string{"StoreDir is required", `"a.b"`}},
		{"prefix with separator", bus.Config{StoreDir: t.TempDir(), StreamPrefix: "a_b"}, []string{`'_'`}},
		{"prefix too long", bus.Config{StoreDir: t.TempDir(), StreamPrefix: strings.Repeat("p", 33)}, []string{"longer than 32"}},
		{"store dir is a file", bus.Config{StoreDir: file}, []string{"bus: start embedded server"}},
		{"nothing listening", bus.Config{URL: "nats://127.0.0.1:1"}, []string{"bus: connect"}},
		{"replicas in embedded mode", bus.Config{StoreDir: t.TempDir(), Replicas: 3}, []string{"needs an external NATS cluster"}},
		{"replicas above JetStream's limit", bus.Config{URL: "nats://127.0.0.1:1", Replicas: 6}, []string{"between 1 and 5"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			b, err := bus.Open(ctx, c.cfg, testLogger(t))
			if err == nil {
				closeBus(t, b)
				t.Fatal("Open: no error")
			}
			t.Logf("Open: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open: %v; want it to mention %s", err, w)
				}
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Open took %s to fail", elapsed)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines can log into.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestEmbeddedServerLogsToSlog(t *testing.T) {
	var out syncBuffer
	// The server's notices arrive at Debug (its banner is noise at Info).
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := bus.Open(testContext(t), bus.Config{StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closeBus(t, b)
	for _, want := range []string{"component=nats-server", "Starting nats-server", "Server is ready"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "level=TRACE") || strings.Contains(out.String(), "level=DEBUG-4") {
		t.Error("trace lines logged at debug level")
	}
}

// TestReplicasDefault checks that streams and key-value buckets created
// without a replica count get the bus's (1 unless configured; a cluster
// of three is exercised in test/e2e's fault suite).
func TestReplicasDefault(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg bus.Config) {
		b := openBus(t, cfg)
		s := ensureTelemetry(t, b)
		if got := s.CachedInfo().Config.Replicas; got != 1 {
			t.Errorf("stream replicas %d, want 1", got)
		}
		kv, err := b.JetStream().CreateOrUpdateKeyValue(testContext(t), jetstream.KeyValueConfig{Bucket: b.Stream("kv")})
		if err != nil {
			t.Fatalf("CreateOrUpdateKeyValue: %v", err)
		}
		st, err := kv.Status(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; got != 1 {
			t.Errorf("bucket replicas %d, want 1", got)
		}
		t.Cleanup(func() { _ = b.JetStream().DeleteKeyValue(context.Background(), b.Stream("kv")) })
	})
}
