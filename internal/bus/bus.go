package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// connectTimeout bounds dialing an external server when ctx has no
	// earlier deadline (nats.Connect takes no context).
	connectTimeout = 5 * time.Second
	// readyTimeout keeps a /readyz probe short even when its caller's
	// context is not.
	readyTimeout = 2 * time.Second
	// publishAckTimeout ends a PublishAsync wait whose acknowledgement never
	// comes: a publish forwarded to a stream leader that died, or lost in a
	// cluster's failover without our own connection dropping, would
	// otherwise hold its waiter (an MQTT connection's worker, a router)
	// forever, and its entry in the client's pending table with it. Under a
	// device connection's takeover wait (mqtt.Config.ConnectTimeout, 10 s),
	// so a stuck connection ends before its device's next one gives up
	// waiting for it; well over a healthy cluster's acknowledgement time,
	// including a leader election.
	publishAckTimeout = 5 * time.Second
)

// Bus is a connection to JetStream, either to an embedded server it owns or
// to an external one. It is safe for concurrent use.
type Bus struct {
	prefix   string
	replicas int
	log      *slog.Logger
	srv      *server.Server // nil in external mode
	nc       *nats.Conn
	js       jetstream.JetStream

	connClosed     chan struct{} // closed by the ClosedHandler
	connClosedOnce sync.Once
	closeOnce      sync.Once
	closed         chan struct{} // closed when Close has finished everything
	closeErr       error         // set before closed is closed
}

// Open connects to the bus described by cfg, starting the embedded server in
// embedded mode, and returns once JetStream answers. ctx bounds the start;
// it is not retained. A nil log discards everything.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bus: open: %w", err)
	}
	b := &Bus{
		prefix:     cfg.prefix(),
		replicas:   cfg.replicas(),
		log:        log,
		connClosed: make(chan struct{}),
		closed:     make(chan struct{}),
	}

	url := cfg.URL
	var extra []nats.Option
	if cfg.Embedded() {
		srv, err := startEmbedded(ctx, cfg.StoreDir, log)
		if err != nil {
			return nil, fmt.Errorf("bus: start embedded server: %w", err)
		}
		b.srv = srv
		extra = append(extra, nats.InProcessServer(srv))
	}

	nc, err := nats.Connect(url, append(b.connectOptions(ctx), extra...)...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	b.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = replicated{JetStream: js, replicas: b.replicas}
	// Fail now, not at the first publish, when the server has no JetStream
	// or the account has no access to it.
	if err := b.Ready(ctx); err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("bus: open: %w", err)
	}
	if b.srv != nil {
		log.Info("bus open", "mode", "embedded", "prefix", b.prefix, "store_dir", cfg.StoreDir)
	} else {
		log.Info("bus open", "mode", "external", "prefix", b.prefix, "replicas", b.replicas, "server", nc.ConnectedUrlRedacted())
	}
	return b, nil
}

// connectOptions are the same in both modes; in embedded mode reconnects
// never happen because the in-process server only goes away in Close.
func (b *Bus) connectOptions(ctx context.Context) []nats.Option {
	timeout := connectTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	return []nats.Option{
		nats.Name("outpost"),
		nats.Timeout(timeout),
		// An outage of the cluster must not end the process: keep trying
		// and let Ready report it.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		// Notice a dead TCP peer within ~30 s instead of the default ~4 min.
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			b.log.Warn("nats server entering lame duck mode", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				b.log.Error("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			b.log.Error("nats async error", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			b.connClosedOnce.Do(func() { close(b.connClosed) })
		}),
	}
}

// JetStream returns the JetStream handle. It takes physical names: build
// them with Stream and Subject. Key-value buckets created through it get the
// bus's replicas when their configuration leaves Replicas at 0.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn returns the underlying connection, for core NATS request/reply.
// It takes physical subjects: build them with Subject.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Prefix returns the prefix this bus applies to names and subjects.
func (b *Bus) Prefix() string { return b.prefix }

// Stream returns the physical stream name of the logical name.
func (b *Bus) Stream(name string) string { return b.prefix + "_" + name }

// Subject returns the physical subject made of the logical tokens (each part
// may itself contain dots or wildcards). With no parts it is the prefix
// alone.
func (b *Bus) Subject(parts ...string) string {
	if len(parts) == 0 {
		return b.prefix
	}
	return b.prefix + "." + strings.Join(parts, ".")
}

// EnsureStream creates the stream or updates it to cfg, so calling it at
// every start is safe. A cfg.Replicas of 0 takes the bus's Replicas. cfg.Name and cfg.Subjects are logical (see the
// package documentation); cfg itself is not modified. Mirror, Sources,
// SubjectTransform and RePublish are refused: they name streams and subjects
// too, and would need the same translation.
func (b *Bus) EnsureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	logical := cfg.Name
	if logical == "" {
		return nil, errors.New("bus: ensure stream: name is required")
	}
	if cfg.Mirror != nil || len(cfg.Sources) > 0 || cfg.SubjectTransform != nil || cfg.RePublish != nil {
		return nil, fmt.Errorf("bus: ensure stream %s: mirror, sources, subject transform and republish are not supported: %w",
			logical, errors.ErrUnsupported)
	}
	subjects := cfg.Subjects
	if len(subjects) == 0 {
		subjects = []string{logical}
	}
	cfg.Name = b.Stream(logical)
	if cfg.Replicas == 0 {
		cfg.Replicas = b.replicas
	}
	cfg.Subjects = make([]string, len(subjects))
	for i, s := range subjects {
		cfg.Subjects[i] = b.Subject(s)
	}

	stream, err := b.js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another node created it between our update and create; now it
		// exists, so an update brings it to cfg.
		stream, err = b.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: ensure stream %s: %w", cfg.Name, err)
	}
	return stream, nil
}

// Publish stores data on the logical subject and returns the stream
// sequence once JetStream acknowledged it. header may be nil. Without a
// stream on the subject it fails with jetstream.ErrNoStreamResponse (after
// the client's short retries for leader elections, about 0.5 s).
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, header nats.Header) (uint64, error) {
	msg := &nats.Msg{Subject: b.Subject(subject), Data: data, Header: header}
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("bus: publish %s: %w", msg.Subject, err)
	}
	return ack.Sequence, nil
}

// PublishAsync starts storing data on the logical subject and returns a
// wait that blocks until JetStream acknowledged it (the stream sequence),
// refused it, or publishAckTimeout passed without an answer. Several publishes in flight share one round trip to the
// server; callers that must acknowledge in order wait in order.
func (b *Bus) PublishAsync(subject string, data []byte, header nats.Header) (func(ctx context.Context) (uint64, error), error) {
	msg := &nats.Msg{Subject: b.Subject(subject), Data: data, Header: header}
	f, err := b.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", msg.Subject, err)
	}
	return func(ctx context.Context) (uint64, error) {
		select {
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err := <-f.Err():
			return 0, fmt.Errorf("bus: publish %s: %w", msg.Subject, err)
		case <-ctx.Done():
			return 0, fmt.Errorf("bus: publish %s: %w", msg.Subject, ctx.Err())
		}
	}, nil
}

// Ready reports whether JetStream answers a request, within a short timeout;
// it is the bus's /readyz check.
func (b *Bus) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("bus: ready: %w", err)
	}
	return nil
}

// Close drains the connection (pending publishes and subscriptions finish)
// and then shuts the embedded server down. If ctx ends first, Close closes
// the connection without draining and returns ctx's error while the server
// shutdown continues; calling Close again waits for it. Close after a
// completed Close returns the first result.
func (b *Bus) Close(ctx context.Context) error {
	b.closeOnce.Do(func() { go b.shutdown() })
	select {
	case <-b.closed: // finished: report it even when ctx has also ended
		return b.closeErr
	default:
	}
	select {
	case <-b.closed:
		return b.closeErr
	case <-ctx.Done():
		// Give up draining; this lets shutdown move on to the server.
		b.nc.Close()
		return fmt.Errorf("bus: close: %w", context.Cause(ctx))
	}
}

// shutdown runs once, in a goroutine that Close starts and later Close
// calls wait for.
func (b *Bus) shutdown() {
	defer close(b.closed)
	if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.closeErr = fmt.Errorf("bus: close: drain: %w", err)
		b.nc.Close()
	}
	<-b.connClosed
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// replicated gives key-value buckets the bus's replicas when their
// configuration leaves it at 0, so the packages that keep buckets need not
// know the setting (streams get it in EnsureStream).
type replicated struct {
	jetstream.JetStream
	replicas int
}

func (r replicated) withReplicas(cfg jetstream.KeyValueConfig) jetstream.KeyValueConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = r.replicas
	}
	return cfg
}

func (r replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return r.JetStream.CreateKeyValue(ctx, r.withReplicas(cfg))
}

func (r replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return r.JetStream.UpdateKeyValue(ctx, r.withReplicas(cfg))
}

func (r replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return r.JetStream.CreateOrUpdateKeyValue(ctx, r.withReplicas(cfg))
}
