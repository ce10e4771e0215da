package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/pki"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// App is one running Outpost node.
type App struct {
	cfg          config.Config
	log          *slog.Logger
	ca           *pki.Authority
	store        store.Store
	bus          *bus.Bus
	installation arm.Installation
	arm          *arm.Service
	runner       *arm.OperationRunner
	server       *server.Server
	blobServer   *server.Server
	endpoint     string
	fellBack     bool

	// identity plane
	keys      *identity.KeyRing
	issuer    *identity.Issuer
	validator *identity.Validator
	directory *identity.Directory
	rbac      *rbac.Engine
	msi       *msi.Manager
	tokens    *msi.TokenSource
	msiHeader *msi.HeaderSigner
	msiServer *http.Server
	msiLn     net.Listener
	operator  Operator
	hub       hubPlane
	targets   targetsPlane
	amqp      amqpPlane
	deploys   *deploy.Deployments
	started   time.Time
	// metrics is the node's Prometheus registry, served on /metrics.
	metrics *prometheus.Registry
	// nodeID names this node to the others (leases, heartbeats).
	nodeID string
}

// New opens everything a node needs and binds its listener. On error, what
// was opened is closed again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("app: invalid configuration:\n%w", err)
	}
	a := &App{cfg: cfg, log: log, started: time.Now().UTC(), metrics: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.close(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: data dir: %w", err)
	}
	if a.nodeID, err = loadNodeID(cfg.DataDir); err != nil {
		return nil, err
	}
	ln, fellBack, err := server.Bind(cfg.Listen, cfg.FallbackPort, log)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a.fellBack = fellBack
	a.endpoint = endpointURL(ln.Addr())
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()

	// The CA, the store and the bus are independent; open them side by side
	// to keep cold start short.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		ca, err := pki.Open(filepath.Join(cfg.DataDir, "pki"), pki.Options{
			DNSSuffix: cfg.DNSSuffix,
			Allow:     func(name string) bool { return strings.HasSuffix(name, "."+cfg.DNSSuffix) },
		}, log.With("component", "pki"))
		a.ca = ca
		return err
	})
	g.Go(func() error {
		dsn := cfg.Store.DSN
		if cfg.Store.Driver == sqlstore.DriverSQLite {
			dsn = cfg.SQLitePath()
		}
		st, err := sqlstore.Open(gctx, sqlstore.Config{Driver: cfg.Store.Driver, DSN: dsn}, log.With("component", "store"))
		if st != nil {
			a.store = st
		}
		return err
	})
	g.Go(func() error {
		b, err := bus.Open(gctx, bus.Config{
			URL: cfg.NATS.URL, StoreDir: filepath.Join(cfg.DataDir, "jetstream"), StreamPrefix: cfg.NATS.StreamPrefix,
			Replicas: cfg.NATS.Replicas,
		}, log.With("component", "bus"))
		a.bus = b
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}

	a.installation, err = arm.EnsureInstallation(ctx, a.store, cfg.TenantID, cfg.SubscriptionID)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := a.buildIdentity(ctx); err != nil {
		return nil, err
	}
	// The egress client (which file upload and jobs use) needs every
	// listener Outpost serves on, so the blob listener is bound first.
	if err := a.listenBlob(); err != nil {
		return nil, err
	}
	if err := a.buildEgress(ln.Addr()); err != nil {
		return nil, err
	}
	if err := a.buildHub(); err != nil {
		return nil, err
	}
	if err := a.buildTargets(); err != nil {
		return nil, err
	}
	if err := a.buildRouting(); err != nil {
		return nil, err
	}
	if err := a.buildJobs(); err != nil {
		return nil, err
	}
	a.deploys = deploy.New(deploy.Config{
		Resources: a.store.Resources(), Authorizer: rbacAuthorizer{engine: a.rbac},
		TenantID: a.installation.TenantID, Log: log.With("component", "deployments"),
		Environment: templateEnvironment(a.endpoint, cfg.DNSSuffix),
	})
	registry, err := arm.NewRegistry(a.resourceTypes()...)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	for _, pa := range a.providerActions() {
		registry.AddProviderAction(pa)
	}
	a.arm = arm.NewService(arm.ServiceConfig{
		Store: a.store, Registry: registry, Installation: a.installation, Log: log.With("component", "arm"),
	})
	a.deploys.Bind(a.arm)
	a.runner = arm.NewOperationRunner(a.arm, a.nodeID, log.With("component", "arm-operations"))
	if a.operator, err = a.ensureOperator(ctx); err != nil {
		return nil, err
	}
	// What is stored at start holds at once; only later changes wait out
	// the propagation delay.
	if err := a.rbac.ReloadNow(ctx); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := a.listenMQTT(); err != nil {
		return nil, err
	}
	if err := a.buildAMQP(); err != nil {
		return nil, err
	}

	if a.msiLn, err = net.Listen("tcp", cfg.Identity.ManagedIdentityListen); err != nil {
		return nil, fmt.Errorf("app: managed identity endpoint: %w", err)
	}
	a.msiServer = &http.Server{
		Handler:           msi.NewEndpoint(a.tokens, a.msiHeader, log.With("component", "msi")),
		ReadHeaderTimeout: 10 * time.Second,
	}

	readiness := map[string]server.Checker{
		"store": server.CheckFunc(a.store.Ping),
		"bus":   server.CheckFunc(a.bus.Ready),
	}
	if a.targets.blobLn != nil {
		// The path-style port serves only blobs; its handler bounds bodies
		// itself. Its metrics are its own registry's (/metrics on that port).
		a.blobServer = server.New(server.Config{
			Listener: a.targets.blobLn, TLS: a.ca.ServerTLSConfig(), Handler: a.targets.blob.PathStyle(), HTTP1Only: true,
			Readiness: readiness, Registry: prometheus.NewRegistry(), Log: log.With("component", "blob-http"),
			MaxInFlight: cfg.HTTP.MaxInFlight, Busy: storageBusy,
			ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout, IdleTimeout: cfg.HTTP.IdleTimeout,
		})
	}
	mux, err := a.defaultMux()
	if err != nil {
		return nil, err
	}
	routes := &server.HostRouter{Default: mux}
	routes.Handle("blob."+cfg.DNSSuffix, a.targets.blob)
	routes.Handle("servicebus."+cfg.DNSSuffix, messagingHost{
		suffix: cfg.DNSSuffix, eventHubs: a.targets.eventHubs, serviceBus: a.targets.serviceBus,
		amqpWebSocket: a.amqp.srv.WebSocketHandler(),
	})
	a.amqp.srv.SetMetrics(amqp.NewMetrics(a.metrics))
	a.server = server.New(server.Config{
		Listener:          ln,
		TLS:               a.ca.ServerTLSConfig(),
		Handler:           routes,
		Readiness:         readiness,
		Registry:          a.metrics,
		Log:               log.With("component", "http"),
		MaxBodyBytes:      cfg.HTTP.MaxBodyBytes,
		MaxInFlight:       cfg.HTTP.MaxInFlight,
		Busy:              a.serverBusy,
		Unbounded:         a.isBlobHost,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
	})
	if err := a.writeRuntime(); err != nil {
		return nil, err
	}
	return a, nil
}

// endpointURL is the base URL clients use: https://localhost for 443 on a
// loopback or wildcard address, else host:port.
func endpointURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "https://" + addr.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() || tcp.IP.Equal(net.IPv4(127, 0, 0, 1)) || tcp.IP.Equal(net.IPv6loopback) {
		host = "localhost"
	}
	if tcp.Port == 443 {
		return "https://" + host
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// Run serves until ctx is done, then shuts down within the configured
// timeout and closes the store and bus.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("outpost serving", "endpoint", a.endpoint, "tenant", a.installation.TenantID,
		"subscription", a.installation.SubscriptionID, "data_dir", a.cfg.DataDir, "ca_file", a.ca.CAFile())
	started := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.server.Run(gctx, a.cfg.ShutdownTimeout) })
	g.Go(func() error {
		// What a crash left on the blob disk: nothing of this process is
		// older than started, so only the leftovers go.
		n, err := a.targets.disk.Sweep(gctx, started)
		if err != nil && gctx.Err() == nil {
			a.log.Warn("blob: sweeping leftovers of an earlier run failed; they stay on disk", "removed", n, "err", err)
		} else if n > 0 {
			a.log.Info("blob: removed leftovers of an earlier run (unfinished uploads, unreferenced content)", "removed", n)
		}
		return nil
	})
	g.Go(func() error { return a.runner.Run(gctx) })
	g.Go(func() error { return a.serveMQTT(gctx) })
	g.Go(func() error { return a.serveAMQP(gctx) })
	g.Go(func() error { return a.hub.sessions.RunC2D(gctx) })
	g.Go(func() error { return a.runJobs(gctx) })
	g.Go(func() error { return a.targets.serviceBus.Run(gctx) })
	g.Go(func() error { return a.hub.routing.Run(gctx) })
	if a.blobServer != nil {
		g.Go(func() error { return a.blobServer.Run(gctx, a.cfg.ShutdownTimeout) })
	}
	g.Go(func() error {
		return a.keys.Run(gctx, time.Minute, func(err error) { a.log.Warn("refresh signing keys", "err", err) })
	})
	g.Go(func() error { return a.rbac.Run(gctx, 5*time.Second) })
	g.Go(func() error {
		errc := make(chan error, 1)
		go func() { errc <- a.msiServer.Serve(a.msiLn) }()
		select {
		case err := <-errc:
			return fmt.Errorf("app: managed identity endpoint: %w", err)
		case <-gctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), a.cfg.ShutdownTimeout)
		defer cancel()
		_ = a.msiServer.Shutdown(sctx)
		<-errc
		return nil
	})
	err := g.Wait()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if cerr := a.close(cctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	a.log.Info("outpost stopped")
	return err
}

func (a *App) close(ctx context.Context) error {
	var errs []error
	if a.msiLn != nil && a.msiServer == nil {
		a.msiLn.Close()
	}
	if a.hub.mqttLn != nil && a.server == nil {
		a.hub.mqttLn.Close()
	}
	if a.amqp.ln != nil && a.server == nil {
		a.amqp.ln.Close()
	}
	if a.targets.blobLn != nil && a.blobServer == nil {
		a.targets.blobLn.Close()
	}
	if a.targets.egress != nil {
		a.targets.egress.Close()
	}
	if a.bus != nil {
		errs = append(errs, a.bus.Close(ctx))
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}

// Endpoint is the HTTPS base URL of the resource manager.
func (a *App) Endpoint() string { return a.endpoint }

// Addr is the bound HTTPS address.
func (a *App) Addr() net.Addr { return a.server.Addr() }

// CAFile is the path of the local CA certificate clients must trust.
func (a *App) CAFile() string { return a.ca.CAFile() }

// CA is the local certificate authority.
func (a *App) CA() *pki.Authority { return a.ca }

// IdentityEndpoint is the managed identity endpoint URL (IDENTITY_ENDPOINT).
func (a *App) IdentityEndpoint() string { return "http://" + a.msiLn.Addr().String() + msi.Path }

// Operator returns the operator's credentials.
func (a *App) Operator() Operator { return a.operator }

// Installation returns the tenant and default subscription.
func (a *App) Installation() arm.Installation { return a.installation }

// Runtime is what a running node records in its data directory for `outpost
// env` and other local tools.
type Runtime struct {
	Endpoint string `json:"endpoint"`
	// IdentityEndpoint is the managed identity endpoint (IDENTITY_ENDPOINT).
	IdentityEndpoint string    `json:"identityEndpoint"`
	Operator         Operator  `json:"operator"`
	CAFile           string    `json:"caFile"`
	TenantID         string    `json:"tenantId"`
	SubscriptionID   string    `json:"subscriptionId"`
	DNSSuffix        string    `json:"dnsSuffix"`
	PID              int       `json:"pid"`
	Started          time.Time `json:"started"`
}

// RuntimeFile is the runtime record's path within a data directory.
func RuntimeFile(dataDir string) string { return filepath.Join(dataDir, "runtime.json") }

// templateEnvironment is what environment() answers in this node's
// templates: Azure's values, except where Outpost is the cloud — its
// resource manager, login endpoint and portal, and its DNS suffix for
// storage — so a template that builds a blob endpoint from
// environment().suffixes.storage reaches Outpost's blob service.
func templateEnvironment(endpoint, dnsSuffix string) *expr.Environment {
	env := expr.AzureCloud()
	env.Name = "Outpost"
	env.ResourceManager = endpoint + "/"
	env.Portal = endpoint + "/portal/"
	env.Authentication.LoginEndpoint = endpoint + "/"
	env.Suffixes["storage"] = dnsSuffix
	return env
}

// Runtime is what this node records for local tools.
func (a *App) Runtime() Runtime {
	return Runtime{
		Endpoint: a.endpoint, CAFile: a.ca.CAFile(), TenantID: a.installation.TenantID,
		SubscriptionID: a.installation.SubscriptionID, DNSSuffix: a.cfg.DNSSuffix,
		IdentityEndpoint: a.IdentityEndpoint(), Operator: a.operator,
		PID: os.Getpid(), Started: a.started,
	}
}

func (a *App) writeRuntime() error {
	b, err := json.MarshalIndent(a.Runtime(), "", "  ")
	if err != nil {
		return fmt.Errorf("app: runtime file: %w", err)
	}
	if err := writeFileAtomic(RuntimeFile(a.cfg.DataDir), b, 0o600); err != nil {
		return fmt.Errorf("app: runtime file: %w", err)
	}
	return nil
}

// ReadRuntime loads the runtime record of a data directory.
func ReadRuntime(dataDir string) (Runtime, error) {
	b, err := os.ReadFile(RuntimeFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return Runtime{}, fmt.Errorf("no Outpost has run with data directory %s yet: start it with `outpost serve --data-dir %s` first", dataDir, dataDir)
	}
	if err != nil {
		return Runtime{}, fmt.Errorf("app: runtime file: %w", err)
	}
	var rt Runtime
	if err := json.Unmarshal(b, &rt); err != nil {
		return Runtime{}, fmt.Errorf("app: runtime file %s: %w", RuntimeFile(dataDir), err)
	}
	return rt, nil
}
