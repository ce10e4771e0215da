package cli

// `outpost bench scale`: the scale-out benchmark of issue #13 — one hub
// holding a million registered devices and a hundred thousand connected
// ones across several node processes on PostgreSQL and NATS, with registry
// operations and routing measured on that hub and on an empty one in the
// same run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"
)

// scaleOptions are the flags of `outpost bench scale`.
type scaleOptions struct {
	workDir     string
	postgresURL string
	natsURL     string
	keep        bool

	nodes        int
	nodeIPPrefix string
	devices      int
	connections  int
	connectConc  int
	hold         time.Duration
	rounds       int

	creates         int
	registryWorkers int
	mixDuration     time.Duration

	publishers        int
	messagesPerDevice int
	inflight          int
	size              int
}

// validate reports every problem at once.
func (o scaleOptions) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.postgresURL == "", "--postgres-url is required (an administrative connection: the benchmark creates and drops its own database)")
	check(o.natsURL == "", "--nats-url is required (JetStream)")
	check(o.nodes < 1 || o.nodes > 200, "--nodes %d is outside 1..200", o.nodes)
	check(o.devices < 1, "--devices %d: at least 1", o.devices)
	check(o.connections < 0, "--connections %d is negative", o.connections)
	check(o.connections+o.publishers > o.devices, "--connections %d and --publishers %d need that many of the --devices %d", o.connections, o.publishers, o.devices)
	check(o.connectConc < 1, "--connect-concurrency %d: at least 1", o.connectConc)
	check(o.creates < 1, "--creates %d: at least 1", o.creates)
	check(o.registryWorkers < 1, "--registry-workers %d: at least 1", o.registryWorkers)
	check(o.mixDuration <= 0, "--mix-duration %s: give a positive duration", o.mixDuration)
	check(o.publishers < 1, "--publishers %d: at least 1", o.publishers)
	check(o.messagesPerDevice < 1, "--messages %d: at least 1", o.messagesPerDevice)
	check(o.inflight < 1 || o.inflight > benchMaxPacketID, "--inflight %d is outside 1..%d", o.inflight, benchMaxPacketID)
	check(o.size < 0 || o.size > 256<<10, "--size %d is outside 0..262144", o.size)
	check(o.hold < 0, "--hold %s is negative", o.hold)
	check(o.rounds < 0, "--rounds %d is negative", o.rounds)
	return errors.Join(errs...)
}

func newBenchScaleCommand() *cobra.Command {
	var o scaleOptions
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "A million registered devices and 100,000 connected across nodes: registry ops and routing, loaded vs empty",
		Long: "Runs --nodes `outpost serve` processes of one installation on a fresh PostgreSQL database\n" +
			"(created from --postgres-url, dropped at the end) and a fresh stream prefix on --nats-url,\n" +
			"listening on 127.0.1.11, .12, … Then, in one run:\n\n" +
			"  1. empty hub: --creates device creates through the service API (spread over the nodes),\n" +
			"     a get-device / update-twin mix for --mix-duration, and routing: --publishers devices\n" +
			"     publish --messages QoS 1 messages each over MQTT/TLS, routed to an identity-based\n" +
			"     Event Hubs endpoint; the rate is messages ÷ (first publish → last delivery counted in\n" +
			"     the nodes' routing metrics);\n" +
			"  2. loaded hub: --devices devices registered with a bulk import job (a devices.txt in a\n" +
			"     storage account of the first node, key-based SAS), --connections of them connected\n" +
			"     over MQTT/TLS and held by one client process per node, then the same measurements;\n" +
			"  3. side by side: --rounds more pairs of the same measurements on both hubs, alternating\n" +
			"     which goes first, with the fleet still held — a shared machine's drift between\n" +
			"     steps 1 and 2 shows in their ratio, not in these.\n\n" +
			"Prints each figure, the loaded ÷ empty ratios (of steps 1 and 2, and each round's with their\n" +
			"median), connection set-up rates and RSS per node.\n" +
			"Needs root (port 443 on 127.0.1.x). Never run by tests.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return benchScale(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.workDir, "work-dir", "", "directory for the nodes' data and logs (default: a new temporary directory, removed unless --keep)")
	fs.StringVar(&o.postgresURL, "postgres-url", "", "PostgreSQL URL of a database to connect to for CREATE/DROP DATABASE (its own data is never touched)")
	fs.StringVar(&o.natsURL, "nats-url", "", "external NATS with JetStream")
	fs.BoolVar(&o.keep, "keep", false, "keep the database, streams and work directory for inspection")
	fs.IntVar(&o.nodes, "nodes", 6, "node processes (each holds connections ÷ nodes; RLIMIT_NOFILE bounds one process)")
	fs.StringVar(&o.nodeIPPrefix, "node-ip-prefix", "127.0.1.", "node i listens on this prefix followed by 11+i, port 443")
	fs.IntVar(&o.devices, "devices", 1_000_000, "devices imported into the loaded hub")
	fs.IntVar(&o.connections, "connections", 100_000, "devices of the loaded hub connected and held over MQTT/TLS")
	fs.IntVar(&o.connectConc, "connect-concurrency", 24, "connections being set up at once per client process")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "how long the connections are held before the loaded measurements (memory settles)")
	fs.IntVar(&o.rounds, "rounds", 3, "side-by-side rounds after the loaded measurements: both hubs measured again, alternating which goes first")
	fs.IntVar(&o.creates, "creates", 20_000, "device creates per hub")
	fs.IntVar(&o.registryWorkers, "registry-workers", 16, "concurrent service API clients, spread over the nodes")
	fs.DurationVar(&o.mixDuration, "mix-duration", 10*time.Second, "how long the get/update mix runs per hub")
	fs.IntVar(&o.publishers, "publishers", 100, "publishing devices for the routing measurement, spread over the nodes")
	fs.IntVar(&o.messagesPerDevice, "messages", 2000, "QoS 1 messages per publishing device")
	fs.IntVar(&o.inflight, "inflight", 16, "QoS 1 messages awaiting PUBACK per publishing device")
	fs.IntVar(&o.size, "size", 256, "payload bytes of a routed message")
	return cmd
}

// scaleResults are one hub's measurements.
type scaleResults struct {
	creates  registryResult
	mix      registryResult
	routing  routingResult
	sessions int64 // PostgreSQL sessions the nodes opened during the registry measurements
	devices  int
	conns    int
	reportAt time.Time
}

func benchScale(ctx context.Context, w io.Writer, o scaleOptions) (err error) {
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if note := raiseFileLimit(o.connections/max(o.nodes, 1) + 1024); note != "" {
		fmt.Fprintln(w, note)
	}
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "outpost-scale-"); err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	if !o.keep && o.workDir == "" {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(w, "bench scale: %d CPUs, work directory %s\n", runtime.NumCPU(), dir)

	dep, err := newScaleDeployment(ctx, log, o, dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dep.close(context.Background(), o.keep); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := dep.startNode(ctx, 0); err != nil {
		return err
	}
	env, err := setUpScaleResources(ctx, log, dep)
	if err != nil {
		return err
	}
	for i := 1; i < o.nodes; i++ {
		if err := dep.startNode(ctx, i); err != nil {
			return err
		}
	}

	// 1. The empty hub, on the whole deployment with nothing connected.
	log.Info("empty hub: registry and routing", "hub", env.empty.name)
	empty, err := measureHub(ctx, log, dep, env, env.empty, o, emptyIDs(o, "new-", true))
	if err != nil {
		return fmt.Errorf("empty hub: %w", err)
	}

	// 2. The loaded hub: import with the first node alone (the blob lives
	// on its disk, and any node may claim the job), then the others again.
	for i := 1; i < o.nodes; i++ {
		if err := dep.stopNode(i); err != nil {
			return err
		}
	}
	imp, err := importDevices(ctx, log, dep, env, o.devices)
	if err != nil {
		return err
	}
	for i := 1; i < o.nodes; i++ {
		if err := dep.startNode(ctx, i); err != nil {
			return err
		}
	}
	conn, err := connectFleet(ctx, log, dep, env, o)
	if err != nil {
		return err
	}
	defer conn.close()
	log.Info("loaded hub: registry and routing", "hub", env.loaded.name, "devices", o.devices, "connected", conn.ok())
	loaded, err := measureHub(ctx, log, dep, env, env.loaded, o, loadedIDs(o, "new-"))
	if err != nil {
		return fmt.Errorf("loaded hub: %w", err)
	}

	// 3. Side by side: the two hubs measured in alternation while the
	// fleet stays held.
	var rounds []scaleRound
	for r := range o.rounds {
		prefix := fmt.Sprintf("r%d-", r+1)
		var rd scaleRound
		measure := func(loadedFirst bool) error {
			if loadedFirst {
				if rd.loaded, err = measureHub(ctx, log, dep, env, env.loaded, o, loadedIDs(o, prefix)); err != nil {
					return fmt.Errorf("round %d, loaded hub: %w", r+1, err)
				}
			}
			if rd.empty, err = measureHub(ctx, log, dep, env, env.empty, o, emptyIDs(o, prefix, false)); err != nil {
				return fmt.Errorf("round %d, empty hub: %w", r+1, err)
			}
			if !loadedFirst {
				if rd.loaded, err = measureHub(ctx, log, dep, env, env.loaded, o, loadedIDs(o, prefix)); err != nil {
					return fmt.Errorf("round %d, loaded hub: %w", r+1, err)
				}
			}
			return nil
		}
		log.Info("side by side", "round", r+1, "of", o.rounds)
		if err := measure(r%2 == 1); err != nil {
			return err
		}
		rounds = append(rounds, rd)
	}
	stillConnected := conn.stillConnected()
	after := dep.nodeStats()
	printScaleReport(w, o, dep, imp, conn, after, stillConnected, empty, loaded)
	printScaleRounds(w, rounds)
	return nil
}

// scaleRound is one side-by-side pair of measurements.
type scaleRound struct{ empty, loaded scaleResults }

// loadedIDs are the loaded hub's registry ids: new devices under prefix,
// existing ones from the import, publishers the imported devices after the
// connected ones.
func loadedIDs(o scaleOptions, prefix string) registryIDs {
	return registryIDs{
		prefix:    prefix,
		existing:  func(n int) string { return scaleDeviceID(n % o.devices) },
		publisher: func(i int) string { return scaleDeviceID(o.connections + i) },
	}
}

// emptyIDs are the empty hub's: new devices under prefix, existing ones
// and publishers from its first measurement (which creates them).
func emptyIDs(o scaleOptions, prefix string, first bool) registryIDs {
	return registryIDs{
		prefix:           prefix,
		existing:         func(n int) string { return fmt.Sprintf("new-%07d", n%o.creates) },
		publisher:        func(i int) string { return fmt.Sprintf("pub-%07d", i) },
		createPublishers: first,
	}
}

// scaleDeviceID names the loaded hub's n-th device.
func scaleDeviceID(n int) string { return fmt.Sprintf("dev-%07d", n) }

// nodeLog is where node i writes its log.
func nodeLog(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("node%d.log", i)) }
