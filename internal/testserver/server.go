package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/app"
	"github.com/outpost-iot/outpost/internal/cli"
	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// Option changes the configuration of a test server.
type Option func(t testing.TB, c *config.Config)

// WithPostgres stores state in a fresh PostgreSQL database of its own.
func WithPostgres() Option {
	return func(t testing.TB, c *config.Config) {
		c.Store.Driver = "postgres"
		c.Store.DSN = testenv.PostgresDSN(t)
	}
}

// WithExternalNATS uses the external NATS server with a private stream prefix.
func WithExternalNATS() Option {
	return func(t testing.TB, c *config.Config) {
		c.NATS.URL = testenv.NATSURL(t)
		c.NATS.StreamPrefix = testenv.StreamPrefix(t)
	}
}

// WithDataDir uses dir instead of a fresh temporary directory (restarts).
func WithDataDir(dir string) Option {
	return func(_ testing.TB, c *config.Config) { c.DataDir = dir }
}

// WithConfig applies an arbitrary change.
func WithConfig(f func(*config.Config)) Option {
	return func(_ testing.TB, c *config.Config) { f(c) }
}

// Tier is a named set of options: the storage and bus backends a test runs on.
type Tier struct {
	Name    string
	Options []Option
}

// Tiers are the backends every end-to-end test runs against: embedded
// (SQLite + in-process NATS) and scale-out (PostgreSQL + external NATS). The
// scale-out tier is skipped locally without OUTPOST_TEST_POSTGRES and
// OUTPOST_TEST_NATS, and fails under CI=true.
func Tiers() []Tier {
	return []Tier{
		{Name: "embedded"},
		{Name: "postgres-nats", Options: []Option{WithPostgres(), WithExternalNATS()}},
	}
}

// Server is an in-process Outpost.
type Server struct {
	App      *app.App
	Config   config.Config
	IP       string // the loopback address it is bound to
	Endpoint string // HTTPS base URL of the resource manager
	CAFile   string
	// Has443 reports whether the server holds port 443 on IP.
	Has443 bool

	cancel context.CancelFunc
	done   chan error
}

// baseConfig is the configuration every test server starts from.
func baseConfig(t testing.TB) config.Config {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.ShutdownTimeout = 5 * time.Second
	c.Log.Level = "warn"
	return c
}

// Start runs Outpost in process on a loopback address of its own and stops
// it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := baseConfig(t)
	for _, o := range opts {
		o(t, &cfg)
	}
	return startConfig(t, cfg)
}

// startConfig runs Outpost in process with cfg on a free loopback address.
func startConfig(t testing.TB, cfg config.Config) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	var (
		a      *app.App
		ip     string
		has443 bool
		err    error
	)
	for attempt := 0; attempt < 20; attempt++ {
		ip = loopbackCandidate()
		c := cfg
		c.FallbackPort = 0
		if canBind443(ip) {
			c.Listen, has443 = net.JoinHostPort(ip, "443"), true
		} else {
			c.Listen, has443 = net.JoinHostPort(ip, "0"), false
		}
		a, err = app.New(ctx, c, log)
		if err == nil {
			cfg = c
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("start outpost: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("start outpost: no free loopback address: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	s := &Server{
		App: a, Config: cfg, IP: ip, Endpoint: "https://" + a.Addr().String(), CAFile: a.CAFile(),
		Has443: has443, cancel: cancel, done: make(chan error, 1),
	}
	s.Endpoint = a.Endpoint()
	go func() { s.done <- a.Run(runCtx) }()
	t.Cleanup(func() { s.Stop(t) })
	WaitReady(t, s.HTTPClient(), s.Endpoint)
	return s
}

// Stop shuts the server down (idempotent) and reports a failed shutdown.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("outpost shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("outpost did not shut down within 15s")
	}
}

// Require443 ends the test unless the server holds port 443 (what device
// SDKs need).
func (s *Server) Require443(t testing.TB) {
	t.Helper()
	if !s.Has443 {
		testenv.Unavailable(t, "this test needs port 443 on a loopback address (run as root)")
	}
}

// CertPool trusts the server's CA only.
func (s *Server) CertPool() *x509.CertPool { return s.App.CA().CertPool() }

// HTTPClient trusts the server's CA and dials names under the server's DNS
// suffix at its address itself: Go's resolver caches /etc/hosts for a few
// seconds, so a name MapHosts just added may not resolve yet in this process.
func (s *Server) HTTPClient() *http.Client {
	suffix := "." + s.Config.DNSSuffix
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(host), suffix) {
					addr = net.JoinHostPort(s.IP, port)
				}
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// Env is exactly the environment `outpost env` prints for this server,
// for running real clients (node, az, Go programs) against it.
func (s *Server) Env() map[string]string {
	return cli.EnvVars(s.App.Runtime())
}

// Token gets an access token for the operator and resource (e.g.
// "https://management.core.windows.net/") from the real token endpoint.
func (s *Server) Token(t testing.TB, resource string) string {
	t.Helper()
	op := s.App.Operator()
	return ClientCredentialsToken(t, s.HTTPClient(), s.Endpoint, op.TenantID, op.ClientID, op.ClientSecret, resource)
}

// WaitReady polls GET /readyz until it answers 200, failing after 30 s.
func WaitReady(t testing.TB, c *http.Client, endpoint string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(endpoint + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = errors.New(resp.Status)
		} else {
			last = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("outpost at %s not ready after 30s: %v", endpoint, last)
}

// testWriter sends server logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
