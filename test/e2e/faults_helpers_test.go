package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// faultsLong reports whether the long local variants run
// (OUTPOST_FAULTS_LONG=1): the endpoint outage lasts 10 minutes instead of
// seconds, and the publish runs are longer.
func faultsLong() bool {
	v, _ := strconv.ParseBool(os.Getenv("OUTPOST_FAULTS_LONG"))
	return v
}

// faultCounts are what every fault case reports.
type faultCounts struct {
	Sent, Acked, Delivered, Lost, Duplicated int
}

func (c faultCounts) String() string {
	return fmt.Sprintf("sent %d, acknowledged %d, delivered %d (distinct), lost %d, duplicated %d",
		c.Sent, c.Acked, c.Delivered, c.Lost, c.Duplicated)
}

// countDelivery compares the acknowledged ids with what was found (id →
// copies) and fills Delivered, Lost and Duplicated.
func (c *faultCounts) countDelivery(acked map[string]bool, found map[string]int) {
	c.Acked = len(acked)
	c.Delivered = len(found)
	c.Lost, c.Duplicated = 0, 0
	for id := range acked {
		if found[id] == 0 {
			c.Lost++
		}
	}
	for _, n := range found {
		if n > 1 {
			c.Duplicated += n - 1
		}
	}
}

// natsCluster is a JetStream cluster of in-process servers on loopback
// ports, each with its own store directory.
type natsCluster struct {
	servers []*server.Server
	urls    []string
}

// startNATSCluster starts n clustered JetStream servers and waits until
// the cluster has a meta leader. They are shut down when the test ends.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freeTCPPort(t)
	}
	var routes []string
	for _, p := range clusterPorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &natsCluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("faults-n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoSigs:     true,
			NoLog:      true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster: server.ClusterOpts{
				Name: "faults", Host: "127.0.0.1", Port: clusterPorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats server %d: %v", i+1, err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats server %d not ready", i+1)
		}
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, s.ClientURL())
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	// JetStream answers once the meta group has elected a leader.
	nc := c.connect(t)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitFor(t, 30*time.Second, "the JetStream cluster has a meta leader", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return c
}

// URL is the comma-separated client URL list, as --nats-url takes it.
func (c *natsCluster) URL() string { return strings.Join(c.urls, ",") }

func (c *natsCluster) connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to the NATS cluster: %v", err)
	}
	return nc
}

// serverNamed returns the running server with the given name.
func (c *natsCluster) serverNamed(name string) *server.Server {
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls f until it returns nil, failing the test with its last
// error after within.
func waitFor(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", within, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownPostgres is a PostgreSQL server the test started itself: initdb into
// a directory of its own and pg_ctl on a free loopback port, run as the
// postgres OS user (PostgreSQL refuses to run as root). It never touches
// the shared server.
type ownPostgres struct {
	dir, port string
	user      string
}

// startOwnPostgres initialises and starts a private PostgreSQL. It needs
// initdb and pg_ctl on PATH (or /usr/local/bin) and root (to run them as
// the postgres user); testenv.Unavailable otherwise.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "a private PostgreSQL is run as the postgres OS user, which needs root")
	}
	for _, bin := range []string{"initdb", "pg_ctl", "runuser"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, "a private PostgreSQL needs %s on PATH: %v", bin, err)
		}
	}
	u, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		testenv.Unavailable(t, "a private PostgreSQL runs as the postgres OS user, which does not exist: %v", err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(u)))
	g, _ := exec.Command("id", "-g", "postgres").Output()
	gid, _ := strconv.Atoi(strings.TrimSpace(string(g)))
	// A directory the postgres user can reach: t.TempDir's parents are
	// root's and private.
	dir, err := os.MkdirTemp("", "outpost-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	p := &ownPostgres{dir: dir, port: strconv.Itoa(freeTCPPort(t)), user: "postgres"}
	if out, err := p.run("initdb", "-D", p.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.start(t)
	t.Cleanup(func() { p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop") }) //nolint:errcheck
	return p
}

func (p *ownPostgres) data() string { return filepath.Join(p.dir, "data") }

func (p *ownPostgres) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("runuser", append([]string{"-u", p.user, "--", name}, args...)...)
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

// start starts the server and waits until it accepts connections.
func (p *ownPostgres) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%s -c unix_socket_directories=%s -c fsync=off -c max_connections=50", p.port, p.dir)
	if out, err := p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "-t", "30", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop stops the server (fast: sessions are ended, as in a restart or a
// failover).
func (p *ownPostgres) stop(t *testing.T) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data(), "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// DSN is the URL of the postgres database (Outpost migrates into it).
func (p *ownPostgres) DSN() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

// qos1Device is a device publishing QoS 1 telemetry with paho, counting
// PUBACKs by message id.
type qos1Device struct {
	client paho.Client

	mu      sync.Mutex
	sent    int
	acked   map[string]bool
	lost    int // connections lost
	connect int
}

// connectDevice connects an MQTT device to the server's 8883 with a SAS
// token. With a persistent session and auto-reconnect, unacknowledged
// publishes are sent again after a reconnect, as the device SDKs do.
func connectDevice(t *testing.T, s *testserver.Server, h testHub, deviceID, key string) *qos1Device {
	t.Helper()
	d := &qos1Device{acked: map[string]bool{}}
	token, _ := sas.Sign(h.HostName+"/devices/"+deviceID, key, "", time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
		SetClientID(deviceID).SetUsername(h.HostName + "/" + deviceID + "/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(500 * time.Millisecond).SetConnectTimeout(3 * time.Second).
		SetOnConnectHandler(func(paho.Client) { d.mu.Lock(); d.connect++; d.mu.Unlock() }).
		SetConnectionLostHandler(func(paho.Client, error) { d.mu.Lock(); d.lost++; d.mu.Unlock() })
	d.client = paho.NewClient(opts)
	if tok := d.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", deviceID, tok.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(100) })
	return d
}

// publish sends n messages with ids prefix-0… with 8 in flight, calling
// mid once when half of them are acknowledged, and waits for the last
// acknowledgement (or ackWait per message).
func (d *qos1Device) publish(t *testing.T, deviceID, prefix string, n int, ackWait time.Duration, mid func()) {
	t.Helper()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var once sync.Once
	for i := range n {
		sem <- struct{}{}
		id := fmt.Sprintf("%s-%d", prefix, i)
		d.mu.Lock()
		d.sent++
		d.mu.Unlock()
		tok := d.client.Publish("devices/"+deviceID+"/messages/events/$.mid="+id, 1, false, `{"id":"`+id+`"}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !tok.WaitTimeout(ackWait) || tok.Error() != nil {
				return
			}
			d.mu.Lock()
			d.acked[id] = true
			half := len(d.acked) == n/2
			d.mu.Unlock()
			if half && mid != nil {
				once.Do(mid)
			}
		}()
	}
	wg.Wait()
}

// snapshot returns the counts so far.
func (d *qos1Device) snapshot() (sent int, acked map[string]bool, connects, lost int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	acked = make(map[string]bool, len(d.acked))
	for k := range d.acked {
		acked[k] = true
	}
	return d.sent, acked, d.connect, d.lost
}

// readTelemetry reads every message of a hub's telemetry stream from the
// start through the server's own streams, returning message id → copies.
func readTelemetry(t *testing.T, streams *telemetry.Streams, hub string) map[string]int {
	t.Helper()
	found := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = streams.Read(ctx, hub, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
		found[m.System[telemetry.PropMessageID]]++
		return nil
	})
	return found
}

// serviceCall is one service REST request's outcome.
type serviceCall struct {
	Status  int
	Body    string
	Err     error
	Elapsed time.Duration
}

func (c serviceCall) String() string {
	if c.Err != nil {
		return fmt.Sprintf("error after %s: %v", c.Elapsed.Round(time.Millisecond), c.Err)
	}
	return fmt.Sprintf("%d after %s: %s", c.Status, c.Elapsed.Round(time.Millisecond), strings.TrimSpace(c.Body))
}

// serviceRequest sends a service REST request to the hub with an
// iothubowner SAS signed at signedAt (the caller's clock) for ttl.
func serviceRequest(s *testserver.Server, h testHub, method, path, body string, signedAt time.Time, ttl time.Duration) serviceCall {
	token, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", signedAt.Add(ttl))
	req, _ := http.NewRequest(method, "https://"+h.HostName+path+"?api-version=2021-04-12", strings.NewReader(body))
	req.Header.Set("Authorization", token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := s.HTTPClient()
	c.Timeout = 20 * time.Second
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return serviceCall{Err: err, Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return serviceCall{Status: resp.StatusCode, Body: string(b), Elapsed: time.Since(start)}
}

// readHubStream reads every message of a hub's telemetry stream from the
// start through a bus of its own, returning message id → copies.
func readHubStream(t *testing.T, cfg bus.Config, hub string) map[string]int {
	t.Helper()
	b, err := bus.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open the bus to read the hub's stream: %v", err)
	}
	defer b.Close(context.Background())
	found := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = telemetry.New(b, time.Now).Read(ctx, hub, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
		found[m.System[telemetry.PropMessageID]]++
		return nil
	})
	return found
}

// unackedStored counts the ids prefix-0…prefix-(n-1) that were not
// acknowledged but are stored anyway.
func unackedStored(acked map[string]bool, found map[string]int, prefix string, n int) int {
	k := 0
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if !acked[id] && found[id] > 0 {
			k++
		}
	}
	return k
}
