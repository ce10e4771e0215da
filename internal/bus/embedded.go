package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startTimeout bounds how long Open waits for the embedded server when ctx
// has no earlier deadline. Recovering a large store can take a while.
const startTimeout = 30 * time.Second

// startEmbedded runs an in-process nats-server with JetStream on file storage
// in storeDir and returns once it accepts in-process connections.
func startEmbedded(ctx context.Context, storeDir string, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "outpost-embedded",
		DontListen: true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   storeDir,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	logger := &serverLogger{log: log.With("component", "nats-server")}
	// Always install the adapter, even over a discarding handler: it is how
	// we learn that Start gave up (Start reports failure only via Fatalf).
	srv.SetLoggerV2(logger,
		log.Enabled(ctx, slog.LevelDebug), log.Enabled(ctx, levelTrace), false)

	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()

	timeout := startTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	// ReadyForConnections returns as soon as startup completes; the short
	// slice only sets how often we look at the context and at Fatalf.
	for !srv.ReadyForConnections(20 * time.Millisecond) {
		var fail error
		select {
		case <-ctx.Done():
			fail = context.Cause(ctx)
		case <-timer.C:
			fail = fmt.Errorf("not ready after %s", timeout)
		default:
			fail = logger.fatal()
		}
		if fail != nil {
			srv.Shutdown()
			<-started
			if ferr := logger.fatal(); ferr != nil && !errors.Is(fail, ferr) {
				fail = errors.Join(fail, ferr)
			}
			return nil, fail
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, errors.New("jetstream is not enabled")
	}
	return srv, nil
}

// levelTrace is below slog.LevelDebug: nats-server traces every protocol
// message, so it is only turned on when a handler asks for that much.
const levelTrace = slog.LevelDebug - 4

// serverLogger adapts nats-server's Logger to *slog.Logger. Fatalf does not
// exit the process (nats-server's own logger does): it logs an error and
// remembers the message so startEmbedded can fail Open with it.
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalErr error // first Fatalf, guarded by mu
}

// Noticef is logged at Debug: the embedded server's start-up banner and routine
// notices are noise in Outpost's own log; warnings and errors stay visible.
func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(levelTrace, format, v) }

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	l.mu.Lock()
	if l.fatalErr == nil {
		l.fatalErr = errors.New(msg)
	}
	l.mu.Unlock()
}

func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}
