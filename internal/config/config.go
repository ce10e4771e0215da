package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Config is everything `outpost serve` needs.
type Config struct {
	// DataDir holds the CA, the SQLite database, embedded JetStream files and
	// the runtime file `outpost env` reads.
	DataDir string `json:"dataDir"`
	// Listen is the HTTPS address. Device SDKs only use port 443.
	Listen string `json:"listen"`
	// MQTTListen is the MQTT over TLS address devices connect to (8883).
	// Empty means Listen's host on port 8883 (port 0 when Listen's is 0).
	MQTTListen string `json:"mqttListen"`
	// AMQPListen is the AMQP over TLS address (5671) the Event Hubs,
	// Service Bus and IoT Hub AMQP clients use. Empty means Listen's host
	// on port 5671 (port 0 when Listen's is 0); "off" disables it (AMQP
	// over WebSocket on the main listener still works).
	AMQPListen string `json:"amqpListen"`
	// FallbackPort is used on Listen's host when Listen can't be bound
	// (no privilege for 443, or taken); 0 disables the fallback.
	FallbackPort int `json:"fallbackPort"`
	// DNSSuffix is the domain resource host names live under:
	// {hub}.{suffix}, {account}.blob.{suffix}, {namespace}.servicebus.{suffix}.
	DNSSuffix string `json:"dnsSuffix"`
	// TenantID and SubscriptionID fix the ids created at first start.
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`

	Log      Log      `json:"log"`
	Store    Store    `json:"store"`
	NATS     NATS     `json:"nats"`
	HTTP     HTTP     `json:"http"`
	Identity Identity `json:"identity"`
	Hub      Hub      `json:"hub"`
	Blob     Blob     `json:"blob"`
	Egress   Egress   `json:"egress"`

	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `json:"shutdownTimeout"`
}

// Log configures log/slog.
type Log struct {
	Format string `json:"format"` // text | json
	Level  string `json:"level"`  // debug | info | warn | error
}

// Store selects the state backend.
type Store struct {
	Driver string `json:"driver"` // sqlite | postgres
	// DSN is a PostgreSQL URL, or a SQLite file path (default: DataDir/outpost.db).
	DSN string `json:"dsn"`
}

// NATS selects the bus.
type NATS struct {
	// URL of an external NATS cluster; empty runs NATS in process.
	URL string `json:"url"`
	// StreamPrefix separates installations sharing one NATS cluster.
	StreamPrefix string `json:"streamPrefix"`
	// Replicas is how many NATS servers keep each stream and key-value
	// bucket Outpost creates (1; 3 in a cluster of three survives the loss
	// of a server). Applied whenever a stream is ensured, so raising it
	// converts existing streams as their hubs are next saved or loaded.
	Replicas int `json:"replicas"`
}

// Identity configures the token issuer and authorization.
type Identity struct {
	// TokenLifetime is how long access tokens are valid (Entra: 60-90 min).
	TokenLifetime time.Duration `json:"tokenLifetime"`
	// KeyRotation is how often the signing key is replaced; retired keys
	// stay published until their tokens have expired.
	KeyRotation time.Duration `json:"keyRotation"`
	// TokenReuse lets the issuer hand out a token it minted for the same
	// principal and resource less than this long ago (0 disables).
	TokenReuse time.Duration `json:"tokenReuse"`
	// ClockSkew is tolerated on exp and nbf.
	ClockSkew time.Duration `json:"clockSkew"`
	// PropagationDelay delays role-assignment changes, to rehearse Azure's
	// "it can take a few minutes" (default 0: immediate).
	PropagationDelay time.Duration `json:"propagationDelay"`
	// ManagedIdentityListen is the loopback HTTP address of the managed
	// identity endpoint (IDENTITY_ENDPOINT) workloads get tokens from.
	ManagedIdentityListen string `json:"managedIdentityListen"`
}

// Hub holds IoT hub quotas and throttles. They are off (0) by default;
// when set, a hub over its rate answers as IoT Hub does (429
// ThrottlingException over HTTPS, a closed connection without PUBACK over MQTT).
type Hub struct {
	// D2CMessagesPerSecond caps each hub's device-to-cloud messages. Like
	// every per-hub rate below it holds across the nodes of an
	// installation: each live node enforces its share.
	D2CMessagesPerSecond float64 `json:"d2cMessagesPerSecond"`
	// DeviceD2CMessagesPerSecond caps each device's device-to-cloud
	// messages, on the node serving the device.
	DeviceD2CMessagesPerSecond float64 `json:"deviceD2cMessagesPerSecond"`
	// RegistryOperationsPerSecond caps each hub's device identity
	// operations (create, get, update, delete, list; IoT Hub: 100/min/unit).
	RegistryOperationsPerSecond float64 `json:"registryOperationsPerSecond"`
	// TwinReadsPerSecond and TwinUpdatesPerSecond cap each hub's twin
	// reads and updates, from the service API and from devices.
	TwinReadsPerSecond   float64 `json:"twinReadsPerSecond"`
	TwinUpdatesPerSecond float64 `json:"twinUpdatesPerSecond"`
	// MethodsPerSecond caps each hub's direct method invocations.
	MethodsPerSecond float64 `json:"methodsPerSecond"`
	// MaxDeviceConnections caps the device connections one node serves
	// (MQTT); past it a CONNECT is refused with "server unavailable".
	// 0 sizes it from the process's open-file limit.
	MaxDeviceConnections int `json:"maxDeviceConnections"`
	// RoutingMinBatchFrequency is the lowest batch frequency a storage
	// routing endpoint may use: Azure's 60 s by default; lower it so tests
	// and demos see blobs in seconds.
	RoutingMinBatchFrequency time.Duration `json:"routingMinBatchFrequency"`
	// RoutingUnhealthyAfter is how long a routing endpoint fails before its
	// health turns from degraded to unhealthy (5m; also after 10 failed
	// attempts in a row).
	RoutingUnhealthyAfter time.Duration `json:"routingUnhealthyAfter"`
	// RoutingMetricsBucket is the width of one bucket of the routing
	// history the portal charts (1m; sixty buckets are kept, the last
	// hour). Lower it so tests and demos see buckets close in seconds.
	RoutingMetricsBucket time.Duration `json:"routingMetricsBucket"`
	// RoutingRetryBase and RoutingRetryMax shape the backoff between
	// delivery attempts to a failing routing endpoint: RetryBase doubling
	// up to RetryMax (1s, 30s). Messages stay queued meanwhile; after an
	// outage the first delivery comes at most RetryMax after the endpoint
	// is back. Lower them so tests of outages take seconds.
	RoutingRetryBase time.Duration `json:"routingRetryBase"`
	RoutingRetryMax  time.Duration `json:"routingRetryMax"`
}

// Blob configures the blob service's path-style listener.
type Blob struct {
	// Listen is the path-style address (https://host:port/{account}/…, as
	// Azurite serves), which avoids account names colliding with other
	// paths on the main listener. Empty means Listen's host on port 10000
	// (port 0 when Listen's is 0); "off" disables it. Virtual-hosted
	// {account}.blob.{suffix} on the main listener always works.
	Listen string `json:"listen"`
	// MaxBlockBytes bounds one Put Blob or Put Block body.
	MaxBlockBytes int64 `json:"maxBlockBytes"`
}

// Egress is what the hub's own outbound requests (routing, file upload,
// import/export) may reach besides the services Outpost serves.
type Egress struct {
	// Allow lists extra hosts or host:port pairs egress may dial even when
	// they are loopback or private (e.g. an Azurite on 127.0.0.1:10000).
	Allow []string `json:"allow"`
	// DenyPublic refuses public addresses too (an installation that must
	// only ever talk to itself).
	DenyPublic bool `json:"denyPublic"`
	// CAFiles are extra PEM files of CA certificates egress trusts, beside
	// the system's roots and Outpost's own CA (a storage service with a
	// private CA, an Azurite with a self-signed certificate).
	CAFiles []string `json:"caFiles"`
}

// HTTP limits.
type HTTP struct {
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// MaxInFlight caps the requests one node handles at once; past it a
	// request is answered 503 (server busy) in its API's error shape.
	// WebSocket connections (MQTT, AMQP) are not requests in flight.
	MaxInFlight       int           `json:"maxInFlight"`
	ReadHeaderTimeout time.Duration `json:"readHeaderTimeout"`
	IdleTimeout       time.Duration `json:"idleTimeout"`
}

// Default returns the embedded, zero-configuration setup.
func Default() Config {
	return Config{
		DataDir:      DefaultDataDir(),
		Listen:       "127.0.0.1:443",
		FallbackPort: 8443,
		DNSSuffix:    "outpost.localhost",
		Log:          Log{Format: "text", Level: "info"},
		Store:        Store{Driver: "sqlite"},
		NATS:         NATS{StreamPrefix: "outpost", Replicas: 1},
		HTTP:         HTTP{MaxBodyBytes: 4 << 20, MaxInFlight: 1024, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second},
		Identity: Identity{
			TokenLifetime: 75 * time.Minute, KeyRotation: 7 * 24 * time.Hour, TokenReuse: 5 * time.Minute,
			ClockSkew: 5 * time.Minute, ManagedIdentityListen: "127.0.0.1:0",
		},
		Blob: Blob{MaxBlockBytes: 256 << 20},
		Hub: Hub{
			RoutingMinBatchFrequency: 60 * time.Second, RoutingUnhealthyAfter: 5 * time.Minute, RoutingMetricsBucket: time.Minute,
			RoutingRetryBase: time.Second, RoutingRetryMax: 30 * time.Second,
		},
		ShutdownTimeout: 10 * time.Second,
	}
}

// DefaultDataDir is $XDG_DATA_HOME/outpost or ~/.local/share/outpost.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "outpost")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "outpost")
	}
	return "outpost-data"
}

var (
	dnsName  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	prefix   = regexp.MustCompile(`^[A-Za-z0-9-]{1,32}$`)
)

// Validate reports every problem, each naming the setting to change.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		add("data-dir: must not be empty")
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q is not host:port (e.g. 127.0.0.1:443 or :443): %v", c.Listen, err)
	} else if port == "" {
		add("listen: %q has no port", c.Listen)
	}
	if _, _, err := net.SplitHostPort(c.MQTTAddress()); err != nil {
		add("mqtt-listen: %q is not host:port (e.g. 127.0.0.1:8883): %v", c.MQTTListen, err)
	}
	if a := c.AMQPAddress(); a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			add("amqp-listen: %q is not host:port (e.g. 127.0.0.1:5671) or off: %v", c.AMQPListen, err)
		}
	}
	if c.FallbackPort < 0 || c.FallbackPort > 65535 {
		add("fallback-port: %d is not a port number (0 disables the fallback)", c.FallbackPort)
	}
	if !dnsName.MatchString(c.DNSSuffix) {
		add("dns-suffix: %q is not a lower-case DNS name such as outpost.localhost", c.DNSSuffix)
	}
	if c.TenantID != "" && !uuidLike.MatchString(c.TenantID) {
		add("tenant-id: %q is not a GUID", c.TenantID)
	}
	if c.SubscriptionID != "" && !uuidLike.MatchString(c.SubscriptionID) {
		add("subscription-id: %q is not a GUID", c.SubscriptionID)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log-format: %q must be text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log-level: %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if !strings.HasPrefix(c.Store.DSN, "postgres://") && !strings.HasPrefix(c.Store.DSN, "postgresql://") {
			add("store-dsn: the postgres driver needs a URL like postgres://user@host:5432/db, got %q", c.Store.DSN)
		}
	default:
		add("store-driver: %q must be sqlite or postgres", c.Store.Driver)
	}
	if c.NATS.URL != "" && !strings.Contains(c.NATS.URL, "://") {
		add("nats-url: %q must be a URL such as nats://127.0.0.1:4222", c.NATS.URL)
	}
	if !prefix.MatchString(c.NATS.StreamPrefix) {
		add("nats-stream-prefix: %q must be 1-32 letters, digits or '-'", c.NATS.StreamPrefix)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		add("nats-replicas: %d must be between 1 and 5", c.NATS.Replicas)
	} else if c.NATS.Replicas > 1 && c.NATS.URL == "" {
		add("nats-replicas: %d needs an external NATS cluster (nats-url); the embedded server keeps one copy", c.NATS.Replicas)
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		add("max-body-bytes: %d is too small; use at least 1024", c.HTTP.MaxBodyBytes)
	}
	if c.Identity.TokenLifetime < 5*time.Minute || c.Identity.TokenLifetime > 24*time.Hour {
		add("token-lifetime: %s must be between 5m and 24h", c.Identity.TokenLifetime)
	}
	if c.Identity.KeyRotation < time.Minute {
		add("key-rotation: %s is too short; use at least 1m", c.Identity.KeyRotation)
	}
	if c.Identity.TokenReuse < 0 || c.Identity.TokenReuse >= c.Identity.TokenLifetime/2 {
		add("token-reuse: %s must be between 0 and half the token lifetime", c.Identity.TokenReuse)
	}
	if c.Identity.ClockSkew < 0 || c.Identity.ClockSkew > 15*time.Minute {
		add("clock-skew: %s must be between 0 and 15m", c.Identity.ClockSkew)
	}
	if c.Identity.PropagationDelay < 0 {
		add("role-propagation-delay: must not be negative")
	}
	if host, _, err := net.SplitHostPort(c.Identity.ManagedIdentityListen); err != nil {
		add("managed-identity-listen: %q is not host:port: %v", c.Identity.ManagedIdentityListen, err)
	} else if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		add("managed-identity-listen: %q must be a loopback address: the endpoint hands out tokens to any local program holding a header", c.Identity.ManagedIdentityListen)
	}
	if c.Hub.RoutingMinBatchFrequency < time.Second || c.Hub.RoutingMinBatchFrequency > 720*time.Second {
		add("routing-min-batch-frequency: %s must be between 1s and 720s", c.Hub.RoutingMinBatchFrequency)
	}
	if c.Hub.RoutingUnhealthyAfter < time.Second || c.Hub.RoutingUnhealthyAfter > time.Hour {
		add("routing-unhealthy-after: %s must be between 1s and 1h", c.Hub.RoutingUnhealthyAfter)
	}
	if c.Hub.RoutingMetricsBucket < time.Second || c.Hub.RoutingMetricsBucket > time.Hour {
		add("routing-metrics-bucket: %s must be between 1s and 1h", c.Hub.RoutingMetricsBucket)
	}
	if c.Hub.RoutingRetryBase < 10*time.Millisecond || c.Hub.RoutingRetryBase > time.Minute {
		add("routing-retry-base: %s must be between 10ms and 1m", c.Hub.RoutingRetryBase)
	}
	if c.Hub.RoutingRetryMax < c.Hub.RoutingRetryBase || c.Hub.RoutingRetryMax > 10*time.Minute {
		add("routing-retry-max: %s must be between routing-retry-base (%s) and 10m", c.Hub.RoutingRetryMax, c.Hub.RoutingRetryBase)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{
		{"hub-d2c-rate", c.Hub.D2CMessagesPerSecond}, {"device-d2c-rate", c.Hub.DeviceD2CMessagesPerSecond},
		{"hub-registry-rate", c.Hub.RegistryOperationsPerSecond}, {"hub-twin-read-rate", c.Hub.TwinReadsPerSecond},
		{"hub-twin-update-rate", c.Hub.TwinUpdatesPerSecond}, {"hub-method-rate", c.Hub.MethodsPerSecond},
	} {
		if r.v < 0 {
			add("%s: must not be negative (0 turns the throttle off)", r.flag)
		}
	}
	if c.Hub.MaxDeviceConnections < 0 {
		add("max-device-connections: must not be negative (0 sizes it from the open-file limit)")
	}
	if c.HTTP.MaxInFlight < 1 {
		add("max-inflight-requests: %d must be at least 1", c.HTTP.MaxInFlight)
	}
	if c.Blob.Listen != "off" {
		if _, _, err := net.SplitHostPort(c.BlobAddress()); err != nil {
			add("blob-listen: %q is not host:port (e.g. 127.0.0.1:10000) or off: %v", c.Blob.Listen, err)
		}
	}
	if c.Blob.MaxBlockBytes < 1<<20 {
		add("blob-max-block-bytes: %d is too small; use at least 1 MiB", c.Blob.MaxBlockBytes)
	}
	for _, f := range c.Egress.CAFiles {
		if _, err := os.Stat(f); err != nil {
			add("egress-ca-file: %v", err)
		}
	}
	for _, a := range c.Egress.Allow {
		if a == "" || strings.ContainsAny(a, "/ ") {
			add("egress-allow: %q must be a host name, an address or host:port", a)
		}
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown-timeout: must be positive, got %s", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// MQTTAddress is the MQTT listen address after defaults.
func (c Config) MQTTAddress() string {
	if c.MQTTListen != "" {
		return c.MQTTListen
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c.Listen
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, "8883")
}

// AMQPAddress is the AMQP over TLS listen address after defaults ("" when
// off).
func (c Config) AMQPAddress() string {
	switch c.AMQPListen {
	case "off":
		return ""
	case "":
	default:
		return c.AMQPListen
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c.Listen
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, "5671")
}

// BlobAddress is the path-style blob listen address after defaults ("" when off).
func (c Config) BlobAddress() string {
	switch c.Blob.Listen {
	case "off":
		return ""
	case "":
	default:
		return c.Blob.Listen
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c.Listen
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, "10000")
}

// SQLitePath is the SQLite file used when no DSN is set.
func (c Config) SQLitePath() string {
	if c.Store.DSN != "" {
		return c.Store.DSN
	}
	return filepath.Join(c.DataDir, "outpost.db")
}
