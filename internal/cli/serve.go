package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/outpost-iot/outpost/internal/app"
	"github.com/outpost-iot/outpost/internal/config"
)

func newServeCommand() *cobra.Command {
	cfg := config.Default()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an Outpost node (embedded SQLite and NATS unless configured otherwise)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := loadServeConfig(cmd.Flags(), &cfg, configFile, dataDir(cmd))
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), loaded.Log.Format, loaded.Log.Level)
			a, err := app.New(cmd.Context(), loaded, log)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configFile, "config", "", "YAML or JSON configuration file (env OUTPOST_CONFIG)")
	bindServeFlags(fs, &cfg)
	return cmd
}

func bindServeFlags(fs *pflag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTPS address; device SDKs only use port 443")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", c.MQTTListen, "MQTT over TLS address (default: the listen host, port 8883)")
	fs.StringVar(&c.AMQPListen, "amqp-listen", c.AMQPListen, "AMQP over TLS address for the Event Hubs, Service Bus and IoT Hub AMQP clients (default: the listen host, port 5671; off disables)")
	fs.IntVar(&c.FallbackPort, "fallback-port", c.FallbackPort, "port used on the listen host when the listen address can't be bound (0: fail instead)")
	fs.StringVar(&c.DNSSuffix, "dns-suffix", c.DNSSuffix, "domain of resource host names ({hub}.{suffix}, {account}.blob.{suffix})")
	fs.StringVar(&c.TenantID, "tenant-id", c.TenantID, "tenant id to create on first start (default: random)")
	fs.StringVar(&c.SubscriptionID, "subscription-id", c.SubscriptionID, "subscription id to create on first start (default: random)")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: text or json")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn or error")
	fs.StringVar(&c.Store.Driver, "store-driver", c.Store.Driver, "state backend: sqlite or postgres")
	fs.StringVar(&c.Store.DSN, "store-dsn", c.Store.DSN, "PostgreSQL URL, or SQLite file (default DATA_DIR/outpost.db)")
	fs.StringVar(&c.NATS.URL, "nats-url", c.NATS.URL, "external NATS (JetStream) URL; empty runs NATS in process")
	fs.StringVar(&c.NATS.StreamPrefix, "nats-stream-prefix", c.NATS.StreamPrefix, "prefix of every stream and subject (installations sharing NATS)")
	fs.IntVar(&c.NATS.Replicas, "nats-replicas", c.NATS.Replicas, "NATS servers keeping each stream and bucket (3 in a cluster of three survives a server's loss; 1 with embedded NATS)")
	fs.Int64Var(&c.HTTP.MaxBodyBytes, "max-body-bytes", c.HTTP.MaxBodyBytes, "largest accepted request body")
	fs.DurationVar(&c.Identity.TokenLifetime, "token-lifetime", c.Identity.TokenLifetime, "lifetime of issued access tokens")
	fs.DurationVar(&c.Identity.KeyRotation, "key-rotation", c.Identity.KeyRotation, "signing-key rotation period")
	fs.DurationVar(&c.Identity.TokenReuse, "token-reuse", c.Identity.TokenReuse, "reuse a token minted for the same principal and resource this recently (0: always mint)")
	fs.DurationVar(&c.Identity.ClockSkew, "clock-skew", c.Identity.ClockSkew, "clock skew tolerated on token expiry and not-before")
	fs.DurationVar(&c.Identity.PropagationDelay, "role-propagation-delay", c.Identity.PropagationDelay, "delay before role assignment changes take effect (rehearses Azure)")
	fs.StringVar(&c.Identity.ManagedIdentityListen, "managed-identity-listen", c.Identity.ManagedIdentityListen, "loopback address of the managed identity endpoint (IDENTITY_ENDPOINT)")
	fs.DurationVar(&c.Hub.RoutingUnhealthyAfter, "routing-unhealthy-after", c.Hub.RoutingUnhealthyAfter, "how long a routing endpoint fails before its health is unhealthy (degraded before)")
	fs.DurationVar(&c.Hub.RoutingMetricsBucket, "routing-metrics-bucket", c.Hub.RoutingMetricsBucket, "width of one bucket of the routing history the portal charts (60 are kept)")
	fs.DurationVar(&c.Hub.RoutingMinBatchFrequency, "routing-min-batch-frequency", c.Hub.RoutingMinBatchFrequency, "lowest storage routing endpoint batch frequency (Azure: 60s; lower for tests)")
	fs.DurationVar(&c.Hub.RoutingRetryBase, "routing-retry-base", c.Hub.RoutingRetryBase, "first wait before retrying a failing routing endpoint; doubles up to routing-retry-max")
	fs.DurationVar(&c.Hub.RoutingRetryMax, "routing-retry-max", c.Hub.RoutingRetryMax, "longest wait between retries of a failing routing endpoint (bounds delivery delay after an outage)")
	fs.Float64Var(&c.Hub.D2CMessagesPerSecond, "hub-d2c-rate", c.Hub.D2CMessagesPerSecond, "per-hub device-to-cloud messages per second, across all nodes (0: no throttle)")
	fs.Float64Var(&c.Hub.DeviceD2CMessagesPerSecond, "device-d2c-rate", c.Hub.DeviceD2CMessagesPerSecond, "per-device device-to-cloud messages per second (0: no throttle)")
	fs.Float64Var(&c.Hub.RegistryOperationsPerSecond, "hub-registry-rate", c.Hub.RegistryOperationsPerSecond, "per-hub device identity operations per second, across all nodes (IoT Hub: 100/min/unit; 0: no throttle)")
	fs.Float64Var(&c.Hub.TwinReadsPerSecond, "hub-twin-read-rate", c.Hub.TwinReadsPerSecond, "per-hub twin reads per second, across all nodes (0: no throttle)")
	fs.Float64Var(&c.Hub.TwinUpdatesPerSecond, "hub-twin-update-rate", c.Hub.TwinUpdatesPerSecond, "per-hub twin updates per second, across all nodes (0: no throttle)")
	fs.Float64Var(&c.Hub.MethodsPerSecond, "hub-method-rate", c.Hub.MethodsPerSecond, "per-hub direct method calls per second, across all nodes (0: no throttle)")
	fs.IntVar(&c.Hub.MaxDeviceConnections, "max-device-connections", c.Hub.MaxDeviceConnections, "device connections this node serves at most; more are refused (MQTT CONNACK 3) (0: from the open-file limit)")
	fs.IntVar(&c.HTTP.MaxInFlight, "max-inflight-requests", c.HTTP.MaxInFlight, "HTTPS requests this node handles at once; more are answered 503 server busy")
	fs.StringVar(&c.Blob.Listen, "blob-listen", c.Blob.Listen, "path-style blob address https://host:port/{account} (default: the listen host, port 10000; off disables)")
	fs.Int64Var(&c.Blob.MaxBlockBytes, "blob-max-block-bytes", c.Blob.MaxBlockBytes, "largest Put Blob / Put Block body")
	fs.StringSliceVar(&c.Egress.Allow, "egress-allow", c.Egress.Allow, "extra host or host:port the hub's egress may reach although loopback/private (repeatable)")
	fs.StringSliceVar(&c.Egress.CAFiles, "egress-ca-file", c.Egress.CAFiles, "PEM file of extra CA certificates the hub's egress trusts (repeatable)")
	fs.BoolVar(&c.Egress.DenyPublic, "egress-deny-public", c.Egress.DenyPublic, "refuse egress to public addresses as well")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on graceful shutdown")
}

// loadServeConfig applies defaults < config file < environment < flags. The
// flags are bound to *cfg; they are replayed on top of the lower layers.
func loadServeConfig(fs *pflag.FlagSet, cfg *config.Config, file, dataDir string) (config.Config, error) {
	changed := map[string]string{}
	fs.Visit(func(f *pflag.Flag) {
		// A slice flag prints as "[a,b]"; replay it as the CSV Set parses.
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			changed[f.Name] = strings.Join(sv.GetSlice(), ",")
			return
		}
		changed[f.Name] = f.Value.String()
	})
	*cfg = config.Default()
	cfg.DataDir = dataDir
	if file == "" {
		file = os.Getenv("OUTPOST_CONFIG")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return config.Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, cfg); err != nil {
			return config.Config{}, fmt.Errorf("config file %s: %w", file, err)
		}
		if _, ok := changed["data-dir"]; !ok && cfg.DataDir == "" {
			cfg.DataDir = dataDir
		}
	}
	for name := range changed {
		if f := fs.Lookup(name); f != nil {
			f.Changed = false
		}
	}
	if err := applyEnv(fs); err != nil {
		return config.Config{}, err
	}
	for name, v := range changed {
		if err := fs.Set(name, v); err != nil {
			return config.Config{}, fmt.Errorf("--%s: %w", name, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return *cfg, nil
}
