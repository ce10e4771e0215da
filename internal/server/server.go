package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checker reports whether a dependency can serve requests.
type Checker interface {
	Ready(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Ready implements Checker.
func (f CheckFunc) Ready(ctx context.Context) error { return f(ctx) }

// Config holds a Server's settings and dependencies.
type Config struct {
	Listener  net.Listener
	TLS       *tls.Config
	Handler   http.Handler
	Readiness map[string]Checker
	Registry  *prometheus.Registry
	Log       *slog.Logger

	MaxBodyBytes int64
	// HTTP1Only turns HTTP/2 off (the blob service: Azure Storage speaks
	// HTTP/1.1 only, and large transfers are several times cheaper over it).
	HTTP1Only bool
	// Unbounded exempts requests from MaxBodyBytes whose handler bounds
	// bodies itself (blob uploads of up to 4000 MiB a block).
	Unbounded         func(r *http.Request) bool
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxInFlight caps the requests handled at once (0: no cap); past it
	// Busy answers (503 in the API's own error shape) instead of the
	// handler, so an overload is refused rather than queued in memory.
	// Health, readiness and metrics are never refused, nor WebSocket
	// upgrades: those are device connections, capped where they are served.
	MaxInFlight int
	Busy        http.HandlerFunc
}

// Server is the HTTPS front door.
type Server struct {
	cfg      Config
	http     *http.Server
	metrics  *httpMetrics
	inFlight chan struct{} // one token per request being handled; nil: no cap
}

// New builds a Server; Run starts serving.
func New(cfg Config) *Server {
	m := newHTTPMetrics(cfg.Registry)
	s := &Server{cfg: cfg, metrics: m}
	if cfg.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, cfg.MaxInFlight)
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_http_requests_in_flight", Help: "HTTP requests being handled now (capped by --max-inflight-requests).",
		}, func() float64 { return float64(len(s.inFlight)) }))
		if s.cfg.Busy == nil {
			s.cfg.Busy = func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "server busy", http.StatusServiceUnavailable)
			}
		}
	}
	// Not an http.ServeMux: it redirects paths with "//", which ARM clients
	// send on purpose (az's "Microsoft.Devices//IotHubs").
	metricsHandler := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			switch r.URL.Path {
			case "/healthz":
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = w.Write([]byte("ok\n"))
				return
			case "/readyz":
				s.readyz(w, r)
				return
			case "/metrics":
				metricsHandler.ServeHTTP(w, r)
				return
			}
		}
		if s.inFlight != nil && !isUpgrade(r) {
			select {
			case s.inFlight <- struct{}{}:
				defer func() { <-s.inFlight }()
			default:
				s.metrics.busy.Inc()
				s.cfg.Busy(w, r)
				return
			}
		}
		cfg.Handler.ServeHTTP(w, r)
	})
	s.http = &http.Server{
		Handler:           s.middleware(root),
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	if cfg.HTTP1Only {
		// A non-nil, empty TLSNextProto keeps net/http from adding h2.
		s.http.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		tc := cfg.TLS.Clone()
		tc.NextProtos = []string{"http/1.1"}
		s.http.TLSConfig = tc
	}
	return s
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.cfg.Listener.Addr() }

// Run serves until ctx is done, then shuts down gracefully within timeout.
func (s *Server) Run(ctx context.Context, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.ServeTLS(s.cfg.Listener, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("server: serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	code := http.StatusOK
	for name, c := range s.cfg.Readiness {
		if err := c.Ready(ctx); err != nil {
			status[name] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			status[name] = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}

// middleware applies request ids, the body limit, panic recovery, metrics
// and access logging to every request.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		h := w.Header()
		// ARM echoes the client's request id and adds its own; the IoT Hub
		// and storage SDKs look for their own names of the same thing.
		h.Set("x-ms-request-id", id)
		h.Set("x-ms-correlation-request-id", firstNonEmpty(r.Header.Get("x-ms-correlation-request-id"), id))
		if cid := r.Header.Get("x-ms-client-request-id"); cid != "" {
			h.Set("x-ms-client-request-id", cid)
		}
		if r.Body != nil && s.cfg.MaxBodyBytes > 0 && (s.cfg.Unbounded == nil || !s.cfg.Unbounded(r)) {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Log.Error("handler panic", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", p)
				if !sw.wrote {
					http.Error(sw, `{"error":{"code":"InternalServerError","message":"Encountered an internal server error; see the Outpost log for request id `+id+`."}}`, http.StatusInternalServerError)
				}
			}
			d := time.Since(start)
			s.metrics.observe(r, sw.status, d)
			s.cfg.Log.Debug("request", "request_id", id, "method", r.Method, "host", r.Host, "path", r.URL.Path, "status", sw.status, "duration", d)
		}()
		next.ServeHTTP(sw, r)
	})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush,
// hijack for WebSockets).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isUpgrade reports a WebSocket (or other protocol) upgrade request.
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || (r.ProtoMajor == 2 && r.Method == http.MethodConnect)
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	busy     prometheus.Counter
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_http_requests_total", Help: "HTTP requests by surface, method and status code.",
		}, []string{"surface", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "outpost_http_request_duration_seconds", Help: "HTTP request latency by surface.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"surface"}),
	}
	m.busy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_http_requests_refused_busy_total", Help: "HTTP requests answered 503 server busy because the node handled its maximum at once (--max-inflight-requests).",
	})
	reg.MustRegister(m.busy, m.requests, m.duration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *httpMetrics) observe(r *http.Request, status int, d time.Duration) {
	surface := surfaceOf(r.URL.Path)
	m.requests.WithLabelValues(surface, r.Method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(surface).Observe(d.Seconds())
}

// surfaceOf names the API surface for metric labels with a small, fixed set
// of values (never a raw path, which would explode cardinality).
func surfaceOf(path string) string {
	p := strings.ToLower(path)
	switch {
	case strings.HasPrefix(p, "/subscriptions"), strings.HasPrefix(p, "/providers"), strings.HasPrefix(p, "/tenants"), strings.HasPrefix(p, "/metadata"):
		return "arm"
	case p == "/healthz", p == "/readyz", p == "/metrics":
		return "ops"
	}
	return "other"
}
