package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/app"
	"github.com/outpost-iot/outpost/internal/sas"
)

// A soak run holds a steady load on a hub whose routing reaches every
// endpoint type and watches what a short benchmark can't see: memory that
// only grows, tokens that expire mid-run (the node's --token-lifetime is
// shorter than the run), latency that drifts, messages lost or duplicated
// on the way to an endpoint. Readers drain every endpoint while it runs, as
// a real consumer would, so the endpoints' stores don't grow either.

// soakOptions are the flags of `outpost bench soak`.
type soakOptions struct {
	devices        int
	rate           float64
	findMax        bool
	inflight       int
	size           int
	duration       time.Duration
	interval       time.Duration
	drainTimeout   time.Duration
	drainMax       time.Duration
	batchFrequency time.Duration
	csv            string
	plotDir        string
	nodeLog        string
	serverPID      int
	broker         string
	amqp           string
	resourceGroup  string
	devicePrefix   string
	keepAlive      time.Duration
	maxRSSGrowth   float64
	maxHeapGrowth  float64
	maxP99Ratio    float64
}

func (o soakOptions) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.devices < 1, "--devices %d: at least 1", o.devices)
	check(o.rate < 0, "--rate %g is negative", o.rate)
	check(!o.findMax && o.rate == 0, "give --rate (messages/s over all devices) or --find-max")
	check(o.inflight < 1 || o.inflight > benchMaxPacketID, "--inflight %d is outside 1..%d", o.inflight, benchMaxPacketID)
	check(o.size < 48 || o.size > 256<<10, "--size %d is outside 48..262144 (the message id takes the first bytes)", o.size)
	check(o.duration <= 0, "--duration %s: give a positive duration", o.duration)
	check(o.interval < time.Second, "--interval %s: at least 1s", o.interval)
	check(o.batchFrequency < time.Second || o.batchFrequency > 720*time.Second, "--batch-frequency %s is outside 1s..720s", o.batchFrequency)
	check(o.csv == "", "--csv: give a file for the samples")
	return errors.Join(errs...)
}

func newBenchSoakCommand() *cobra.Command {
	var o soakOptions
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Hours of steady MQTT load routed to every endpoint type: memory, latency, token refresh, lost messages",
		Long: "Creates a hub with a system-assigned identity, an event hub, a Service Bus queue, a topic\n" +
			"with a subscription and a blob container, grants the hub's identity each one's data role,\n" +
			"and routes every device message to all four through identity-based endpoints and to the\n" +
			"built-in events endpoint. --devices devices then publish QoS 1 over MQTT/TLS at --rate\n" +
			"messages/s in total for --duration while readers drain every endpoint.\n\n" +
			"Every --interval it writes a row to --csv: server RSS and Go heap, publish→PUBACK p50/p99\n" +
			"of the interval, messages sent and acknowledged, messages received by each endpoint,\n" +
			"unhealthy endpoints and token errors (401s and expiry in --node-log). At the end it drains\n" +
			"the endpoints, counts every acknowledged message each one lacks (lost) or got twice, and\n" +
			"prints a verdict; --plot writes the memory and latency plots.\n\n" +
			"--find-max instead publishes as fast as the devices can (--inflight each) for --duration\n" +
			"and reports the highest rate the set-up sustains end to end; soak at half of it.\n" +
			"Run the node with --token-lifetime shorter than --duration so tokens are refreshed mid-run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return benchSoak(cmd, o)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.devices, "devices", 20, "simulated devices, each on its own TLS connection")
	fs.Float64Var(&o.rate, "rate", 0, "messages/s over all devices")
	fs.BoolVar(&o.findMax, "find-max", false, "publish as fast as possible and report the sustained maximum rate")
	fs.IntVar(&o.inflight, "inflight", 8, "QoS 1 messages awaiting PUBACK per device")
	fs.IntVar(&o.size, "size", 256, "payload bytes (the message id is written at the start)")
	fs.DurationVar(&o.duration, "duration", time.Hour, "how long to publish")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "sampling interval")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 0, "after publishing, how long endpoints may go without receiving anything new before the count is final (default: 2 batch windows + 30s)")
	fs.DurationVar(&o.drainMax, "drain-max", 15*time.Minute, "after publishing, the longest the endpoints are drained; what hasn't arrived by then counts as lost")
	fs.DurationVar(&o.batchFrequency, "batch-frequency", 60*time.Second, "the storage endpoint's batch frequency (the node's --routing-min-batch-frequency bounds it)")
	fs.StringVar(&o.csv, "csv", "soak.csv", "file the samples are written to")
	fs.StringVar(&o.plotDir, "plot", "", "directory to write the memory and latency plots to at the end")
	fs.StringVar(&o.nodeLog, "node-log", "", "the node's log file, scanned for 401s and token expiry")
	fs.IntVar(&o.serverPID, "server-pid", 0, "node process to read RSS from (default: the node's pid when it runs here)")
	fs.StringVar(&o.broker, "broker", "", "MQTT over TLS address (default: the node's host, port 8883)")
	fs.StringVar(&o.amqp, "amqp", "", "AMQP over TLS address (default: the node's host, port 5671)")
	fs.StringVar(&o.resourceGroup, "resource-group", "rg-soak", "resource group of everything the run creates")
	fs.StringVar(&o.devicePrefix, "device-prefix", "soak-", "device ids are this prefix and a number")
	fs.DurationVar(&o.keepAlive, "keepalive", 4*time.Minute, "MQTT keep-alive the devices ask for")
	fs.Float64Var(&o.maxRSSGrowth, "max-rss-growth", 0.05, "verdict: largest RSS growth over the second half, as a fraction of its mean there")
	fs.Float64Var(&o.maxHeapGrowth, "max-heap-growth", 0.10, "verdict: largest Go heap (in use) growth over the second half, as a fraction of its mean there")
	fs.Float64Var(&o.maxP99Ratio, "max-p99-ratio", 2, "verdict: largest ratio of the last window's p99 to the first window's")
	cmd.AddCommand(newBenchSoakPlotCommand())
	return cmd
}

// soakNode is how the run reaches the node.
type soakNode struct {
	c          *apiClient
	httpsAddr  string // where every HTTPS host name of the node is dialed
	mqttAddr   string
	amqpAddr   string
	caFile     string
	dnsSuffix  string
	pid        int
	httpClient *http.Client // dials httpsAddr whatever the host name
}

func findSoakNode(cmd *cobra.Command, o soakOptions) (soakNode, string, error) {
	c, err := newAPIClient(cmd)
	if err != nil {
		return soakNode{}, "", err
	}
	n := soakNode{c: c, pid: o.serverPID, caFile: os.Getenv("OUTPOST_CA_FILE")}
	subscription := c.subscription
	if rt, err := app.ReadRuntime(dataDir(cmd)); err == nil && (os.Getenv("OUTPOST_ENDPOINT") == "" || rt.Endpoint == c.endpoint) {
		n.caFile = firstNonEmpty(n.caFile, rt.CAFile)
		n.dnsSuffix = rt.DNSSuffix
		if n.pid == 0 && processExists(rt.PID) {
			n.pid = rt.PID
		}
	}
	n.dnsSuffix = firstNonEmpty(os.Getenv("OUTPOST_DNS_SUFFIX"), n.dnsSuffix)
	if n.dnsSuffix == "" {
		return n, "", errors.New("no DNS suffix: use --data-dir of a running node or set OUTPOST_DNS_SUFFIX")
	}
	u, err := url.Parse(c.endpoint)
	if err != nil {
		return n, "", fmt.Errorf("endpoint %q: %w", c.endpoint, err)
	}
	n.httpsAddr = u.Host
	if u.Port() == "" {
		n.httpsAddr = net.JoinHostPort(u.Hostname(), "443")
	}
	n.mqttAddr = firstNonEmpty(o.broker, net.JoinHostPort(u.Hostname(), "8883"))
	n.amqpAddr = firstNonEmpty(o.amqp, net.JoinHostPort(u.Hostname(), "5671"))
	tr := c.http.Transport.(*http.Transport).Clone()
	httpsAddr := n.httpsAddr
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, httpsAddr)
	}
	tr.MaxIdleConnsPerHost = 8
	n.httpClient = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	return n, subscription, nil
}

func benchSoak(cmd *cobra.Command, o soakOptions) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if note := raiseFileLimit(o.devices); note != "" {
		fmt.Fprintln(w, note)
	}
	node, subscription, err := findSoakNode(cmd, o)
	if err != nil {
		return err
	}
	if o.drainTimeout == 0 {
		o.drainTimeout = 2*o.batchFrequency + 30*time.Second
	}
	start := time.Now()
	st, err := setUpSoak(ctx, node.c, subscription, o.resourceGroup, node.dnsSuffix, o.batchFrequency)
	if err != nil {
		return fmt.Errorf("soak set-up: %w", err)
	}
	ids := benchDeviceIDs(o.devicePrefix, o.devices)
	keys, _, err := ensureBenchDevices(ctx, node.c, node.httpsAddr, st.hubHost, st.ownerKey, ids)
	if err != nil {
		return fmt.Errorf("soak devices: %w", err)
	}
	fmt.Fprintf(w, "setup: hub %s (%s) in group %s, %d devices, in %s\n", st.hubName, st.hubHost, o.resourceGroup, len(ids), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "setup: roles: %s\n", st.roleAssignments)
	fmt.Fprintf(w, "setup: %s; storage batches every %s\n", st.routingSummary, o.batchFrequency)

	expiry := time.Now().Add(o.duration + 24*time.Hour)
	devices := make([]benchDevice, len(ids))
	for i, id := range ids {
		token, err := sas.Sign(st.hubHost+"/devices/"+id, keys[i], "", expiry)
		if err != nil {
			return fmt.Errorf("sign a token for %s: %w", id, err)
		}
		devices[i] = benchDevice{id: id, username: st.hubHost + "/" + id + "/?api-version=" + mqttDeviceAPIVersion, password: token}
	}
	addr, err := resolveBroker(ctx, node.mqttAddr)
	if err != nil {
		return err
	}
	mqttTLS, err := benchTLSConfig(node.caFile, st.hubHost)
	if err != nil {
		return err
	}
	amqpTLS := func(host string) *tls.Config {
		cfg := mqttTLS.Clone()
		cfg.ServerName = host
		return cfg
	}

	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	consumers, err := startSoakConsumers(cctx, st, node.amqpAddr, amqpTLS, node.httpClient, min(o.interval, 5*time.Second), log)
	if err != nil {
		stopConsumers()
		consumers.stop()
		return fmt.Errorf("soak consumers: %w", err)
	}
	target := benchTarget{addr: addr, tls: mqttTLS}
	conns, err := connectSoak(ctx, target, devices, o, sourceAddresses(addr.IP))
	if err != nil {
		stopConsumers()
		consumers.stop()
		return err
	}
	fmt.Fprintf(w, "load: %d devices over MQTT/TLS to %s, QoS 1, %d B, %s for %s; sampling every %s into %s\n",
		len(conns), addr, o.size, describeRate(o), o.duration, o.interval, o.csv)

	run := &soakRun{o: o, node: node, st: st, conns: conns, consumers: consumers, out: w, log: log}
	res, err := run.run(ctx)
	stopConsumers()
	consumers.stop()
	if err != nil {
		return err
	}
	if o.plotDir != "" {
		files, err := plotSoakCSV(o.csv, o.plotDir)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintf(w, "plot: %s\n", f)
		}
	}
	return res.verdictError()
}

func describeRate(o soakOptions) string {
	if o.findMax {
		return fmt.Sprintf("as fast as possible (%d in flight per device)", o.inflight)
	}
	return fmt.Sprintf("%.0f msgs/s in total", o.rate)
}

// writeSoakLine writes a line, ignoring the error as fmt.Fprintf callers do
// for a terminal.
func writeSoakLine(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
