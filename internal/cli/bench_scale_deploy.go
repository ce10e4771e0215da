package cli

// The deployment `outpost bench scale` runs: its own PostgreSQL database and
// NATS stream prefix, and the node processes on them.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/app"
)

// scaleDeployment is the installation under test.
type scaleDeployment struct {
	o      scaleOptions
	log    *slog.Logger
	dir    string
	bin    string
	dbName string
	dsn    string // the nodes' store DSN
	prefix string // NATS stream prefix
	nodes  []*scaleNode
	nc     *nats.Conn // the benchmark's own connection: counts events, deletes streams
	js     jetstream.JetStream
}

// scaleNode is one `outpost serve` process.
type scaleNode struct {
	i       int
	ip      string
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}
	rt      app.Runtime
	api     *apiClient
}

func newScaleDeployment(ctx context.Context, log *slog.Logger, o scaleOptions, dir string) (*scaleDeployment, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	d := &scaleDeployment{o: o, log: log, dir: dir, bin: bin, dbName: "outpost_scale_" + suffix, prefix: "scale" + suffix}
	u, err := url.Parse(o.postgresURL)
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	u.Path = "/" + d.dbName
	d.dsn = u.String()
	if d.nc, err = nats.Connect(o.natsURL); err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if d.js, err = jetstream.New(d.nc); err != nil {
		d.nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	if err := d.adminExec(ctx, "CREATE DATABASE "+d.dbName); err != nil {
		d.nc.Close()
		return nil, fmt.Errorf("create database %s: %w", d.dbName, err)
	}
	log.Info("deployment", "database", d.dbName, "streamPrefix", d.prefix, "nodes", o.nodes)
	for i := range o.nodes {
		d.nodes = append(d.nodes, &scaleNode{i: i, ip: fmt.Sprintf("%s%d", o.nodeIPPrefix, 11+i), dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i))})
	}
	return d, nil
}

func (d *scaleDeployment) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, d.o.postgresURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// sessions is how many sessions PostgreSQL has opened to the run's
// database so far (pg_stat_database.sessions, PostgreSQL 14 and later; -1
// when unknown): a pool that keeps too few idle connections opens one per
// request under concurrency.
func (d *scaleDeployment) sessions(ctx context.Context) int64 {
	conn, err := pgx.Connect(ctx, d.o.postgresURL)
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = $1", d.dbName).Scan(&n); err != nil {
		return -1
	}
	return n
}

// startNode starts node i (again) and waits until it is ready. Nodes after
// the first get a copy of the first node's CA before their first start, as
// docs/operations.md says.
func (d *scaleDeployment) startNode(ctx context.Context, i int) error {
	n := d.nodes[i]
	if i > 0 {
		if err := copyCA(d.nodes[0].dataDir, n.dataDir); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	logFile, err := os.OpenFile(nodeLog(d.dir, i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", i, err)
	}
	defer logFile.Close() // the child has its own descriptor
	n.cmd = exec.Command(d.bin, "serve", "--data-dir", n.dataDir, "--listen", n.ip+":443",
		"--store-driver", "postgres", "--store-dsn", d.dsn, "--nats-url", d.o.natsURL, "--nats-stream-prefix", d.prefix,
		"--log-level", "warn", "--role-propagation-delay", "0", "--routing-metrics-bucket", "1s",
		"--fallback-port", "0", "--max-device-connections", strconv.Itoa(d.maxConnections()))
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", i, err)
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if rt, err := app.ReadRuntime(n.dataDir); err == nil && rt.PID == n.cmd.Process.Pid {
			if ready(ctx, rt) {
				n.rt = rt
				break
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("node %d exited while starting; see %s", i, nodeLog(d.dir, i))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d not ready after 2 minutes; see %s", i, nodeLog(d.dir, i))
		}
	}
	api, err := clientFromProfile(&profile{Endpoint: n.rt.Endpoint, CAFile: n.rt.CAFile, TenantID: n.rt.TenantID,
		ClientID: n.rt.Operator.ClientID, ClientSecret: n.rt.Operator.ClientSecret, Subscription: n.rt.SubscriptionID})
	if err != nil {
		return fmt.Errorf("node %d client: %w", i, err)
	}
	n.api = api
	d.log.Info("node ready", "node", i, "address", n.ip, "pid", n.cmd.Process.Pid)
	return nil
}

// maxConnections is each node's device connection cap: its share of
// --connections and the publishers, with headroom. (The node's default,
// three quarters of its open-file limit, is 15,000 under a limit of 20,000:
// less than a sixth of 100,000.)
func (d *scaleDeployment) maxConnections() int {
	share := (d.o.connections + d.o.publishers + len(d.nodes) - 1) / len(d.nodes)
	return share + share/20 + 100
}

// ready is whether the node's /readyz answers 200.
func ready(ctx context.Context, rt app.Runtime) bool {
	pem, err := os.ReadFile(rt.CAFile)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.Endpoint+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// copyCA copies the first node's CA into another node's data directory
// (once: a node keeps the CA it started with).
func copyCA(from, to string) error {
	dst := filepath.Join(to, "pki")
	if _, err := os.Stat(filepath.Join(dst, "ca.pem")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("copy the CA: %w", err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		b, err := os.ReadFile(filepath.Join(from, "pki", f))
		if err != nil {
			return fmt.Errorf("copy the CA: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o600); err != nil {
			return fmt.Errorf("copy the CA: %w", err)
		}
	}
	return nil
}

// stopNode stops node i gracefully (SIGTERM), or kills it after 30 s.
func (d *scaleDeployment) stopNode(i int) error {
	n := d.nodes[i]
	if n.cmd == nil || n.cmd.Process == nil {
		return nil
	}
	select {
	case <-n.exited:
		n.cmd = nil
		return nil
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd = nil
	d.log.Info("node stopped", "node", i)
	return nil
}

// pid is node i's process id (0 when it is not running).
func (d *scaleDeployment) pid(i int) int {
	if c := d.nodes[i].cmd; c != nil && c.Process != nil {
		return c.Process.Pid
	}
	return 0
}

// nodeStats reads every running node's RSS and CPU time.
func (d *scaleDeployment) nodeStats() []procStats {
	out := make([]procStats, len(d.nodes))
	for i := range d.nodes {
		out[i], _ = readProcStats(d.pid(i))
	}
	return out
}

// close stops the nodes and, unless keep, drops the database and deletes
// the run's streams.
func (d *scaleDeployment) close(ctx context.Context, keep bool) error {
	for i := len(d.nodes) - 1; i >= 0; i-- {
		_ = d.stopNode(i)
	}
	defer d.nc.Close()
	if keep {
		d.log.Info("kept", "database", d.dbName, "streamPrefix", d.prefix)
		return nil
	}
	var errs []error
	if err := d.adminExec(ctx, "DROP DATABASE IF EXISTS "+d.dbName+" WITH (FORCE)"); err != nil {
		errs = append(errs, err)
	}
	if err := deleteStreams(ctx, d.js, d.prefix); err != nil {
		errs = append(errs, err)
	}
	d.log.Info("cleaned up", "database", d.dbName, "streamPrefix", d.prefix)
	return errors.Join(errs...)
}

// deleteStreams deletes the streams and buckets of one stream prefix.
func deleteStreams(ctx context.Context, js jetstream.JetStream, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	names := js.StreamNames(ctx)
	var mine []string
	for name := range names.Name() {
		for _, p := range []string{prefix + "_", "KV_" + prefix + "_", "OBJ_" + prefix + "_"} {
			if strings.HasPrefix(name, p) {
				mine = append(mine, name)
				break
			}
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("delete stream %s: %w", name, err)
		}
	}
	return nil
}
