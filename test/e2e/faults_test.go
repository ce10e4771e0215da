package e2e

// The fault suite (SCL item 3): each case breaks one piece under load and
// reports sent, acknowledged, delivered, lost (must be 0) and duplicated
// counts with t.Logf. Every case takes seconds; OUTPOST_FAULTS_LONG=1 runs
// the long local variants (a 10-minute endpoint outage, longer publish
// runs). Cases that need root, initdb/pg_ctl or mount fail under CI=true
// when those are missing (testenv.Unavailable). The kill -9 of an Outpost
// node is TestScaleOutKillNode and TestKillDuringQoS1Publish.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestFaultNATSNodeLoss: an Outpost node on a 3-server JetStream cluster
// with --nats-replicas 3; a device publishes QoS 1 telemetry and, halfway,
// the server leading the hub's stream shuts down. Publishing goes on
// (after a leader election, and a reconnect when the node was connected
// to that server); every acknowledged message is on the stream afterwards.
func TestFaultNATSNodeLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "device endpoints need ports 443 and 8883 on a loopback address of their own (run as root)")
	}
	cluster := startNATSCluster(t, 3)
	const prefix = "faults"
	s := testserver.Start(t, testserver.WithPostgres(), testserver.WithConfig(func(c *config.Config) {
		c.NATS.URL, c.NATS.StreamPrefix, c.NATS.Replicas = cluster.URL(), prefix, 3
	}))
	h := createHub(t, s, "rg-faults-nats")
	key := createDevice(t, s, h, "natsdev")

	nc := cluster.connect(t)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	streamName := prefix + "_hub-" + h.Name
	info := func() *jetstream.StreamInfo {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, streamName)
		if err != nil {
			t.Fatalf("stream %s: %v", streamName, err)
		}
		return st.CachedInfo()
	}
	if si := info(); si.Config.Replicas != 3 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("the hub's stream has %d replicas (cluster %+v), want 3", si.Config.Replicas, si.Cluster)
	}

	n := 1000
	if faultsLong() {
		n = 20000
	}
	d := connectDevice(t, s, h, "natsdev", key)
	var killed string
	var killedAt time.Time
	start := time.Now()
	d.publish(t, "natsdev", "nats", n, 10*time.Second, func() {
		killed = info().Cluster.Leader
		killedAt = time.Now()
		srv := cluster.serverNamed(killed)
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if killed == "" {
		t.Fatal("the NATS server was never shut down: fewer than half the messages were acknowledged")
	}
	sent, acked, connects, lost := d.snapshot()
	si := info()
	found := readHubStream(t, bus.Config{URL: cluster.URL(), StreamPrefix: prefix}, h.Name)
	var c faultCounts
	c.Sent = sent
	c.countDelivery(acked, found)
	t.Logf("NATS node loss (stream leader %s shut down %s into the run, new leader %s): %s; device connects %d, lost connections %d; run %s",
		killed, killedAt.Sub(start).Round(time.Millisecond), si.Cluster.Leader, c, connects, lost, time.Since(start).Round(time.Millisecond))
	if c.Lost > 0 {
		t.Errorf("%d acknowledged messages are missing from the hub's stream after a NATS server was shut down", c.Lost)
	}
	// The publishes in flight at the shutdown wait for acknowledgements
	// that never come until the bus's publish timeout ends them (5 s); the
	// connection is then closed and paho resends them on the next one.
	// Each waits 10 s for its PUBACK, so nearly all are acknowledged.
	if c.Acked < n*95/100 {
		t.Errorf("publishing did not go on after the NATS server was shut down: %d of %d acknowledged", c.Acked, n)
	} else if c.Acked < n {
		t.Logf("%d publishes were never acknowledged (stored: %d of them)", n-c.Acked, unackedStored(acked, found, "nats", n))
	}
	if si.Cluster.Leader == killed || si.Cluster.Leader == "" {
		t.Errorf("the stream has no new leader: %+v", si.Cluster)
	}
	if c.Duplicated > c.Sent/10 {
		t.Errorf("%d duplicates: more than a tenth of the messages", c.Duplicated)
	}
}

// TestFaultPostgresRestart: an Outpost node on a PostgreSQL the test
// started itself. While the database is stopped, registry requests through
// the service REST API fail fast with a retryable IoT Hub error (503) and
// succeed again once it is back; a device connected before the outage
// goes on publishing throughout (telemetry does not touch the store).
func TestFaultPostgresRestart(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "device endpoints need ports 443 and 8883 on a loopback address of their own (run as root)")
	}
	pg := startOwnPostgres(t)
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Store.Driver, c.Store.DSN = "postgres", pg.DSN()
	}))
	h := createHub(t, s, "rg-faults-pg")
	key := createDevice(t, s, h, "pgdev")
	d := connectDevice(t, s, h, "pgdev", key)

	outage := 3 * time.Second
	if faultsLong() {
		outage = time.Minute
	}
	n := 600
	var during []serviceCall
	var down, up time.Time
	d.publish(t, "pgdev", "pg", n, 10*time.Second, func() {
		pg.stop(t)
		down = time.Now()
		for i := 0; time.Since(down) < outage; i++ {
			during = append(during,
				serviceRequest(s, h, "PUT", fmt.Sprintf("/devices/outage-%d", i), fmt.Sprintf(`{"deviceId":"outage-%d"}`, i), time.Now(), time.Hour),
				serviceRequest(s, h, "GET", "/devices/pgdev", "", time.Now(), time.Hour))
		}
		pg.start(t)
		up = time.Now()
	})
	if down.IsZero() {
		t.Fatal("PostgreSQL was never stopped: fewer than half the messages were acknowledged")
	}
	// Back: the first request that succeeds, and how long after the start.
	var recovered serviceCall
	waitFor(t, 30*time.Second, "registry requests succeed after PostgreSQL is back", func() error {
		recovered = serviceRequest(s, h, "PUT", "/devices/after-outage", `{"deviceId":"after-outage"}`, time.Now(), time.Hour)
		if recovered.Status != 200 {
			return fmt.Errorf("%s", recovered)
		}
		return nil
	})
	if got := serviceRequest(s, h, "GET", "/devices/pgdev", "", time.Now(), time.Hour); got.Status != 200 {
		t.Errorf("get device after the outage: %s", got)
	}
	sent, acked, connects, lost := d.snapshot()
	var c faultCounts
	c.Sent = sent
	c.countDelivery(acked, readTelemetry(t, s.App.Telemetry(), h.Name))
	slowest, statuses := time.Duration(0), map[string]int{}
	for _, r := range during {
		slowest = max(slowest, r.Elapsed)
		key := fmt.Sprint(r.Status)
		if r.Err != nil {
			key = "transport error"
		}
		statuses[key]++
	}
	t.Logf("PostgreSQL restart (down %s): telemetry %s; device connects %d, lost connections %d", up.Sub(down).Round(time.Millisecond), c, connects, lost)
	t.Logf("registry requests during the outage: %d, statuses %v, slowest %s; first: %s", len(during), statuses, slowest.Round(time.Millisecond), during[0])
	t.Logf("after PostgreSQL started: %s", recovered)
	if c.Lost > 0 {
		t.Errorf("%d acknowledged messages are missing", c.Lost)
	}
	if c.Acked < n {
		t.Errorf("telemetry stopped during the database outage: %d of %d acknowledged", c.Acked, n)
	}
	for _, r := range during {
		if r.Err != nil || r.Status != 503 || !strings.Contains(r.Body, "ServiceUnavailable") || r.Elapsed > 5*time.Second {
			t.Errorf("a registry request during the outage: %s; want a 503 ServiceUnavailable within 5s", r)
			break
		}
	}
}

// TestFaultEndpointOutage: a route to an event hub whose namespace turns
// publicNetworkAccess off (the hub's key-based egress is refused, as a
// network rule refuses it in Azure) for a while, then on again. The hub
// accepts every message meanwhile; the routing engine keeps them queued
// and retries, and after the namespace is reachable every acknowledged
// message is in the event hub. --routing-retry-base/max (here 50 ms and
// 500 ms) make the retries, and so CI's run, take seconds; the local run
// with OUTPOST_FAULTS_LONG=1 keeps the namespace closed for 10 minutes
// with the production backoff.
func TestFaultEndpointOutage(t *testing.T) {
	outage := 3 * time.Second
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Hub.RoutingUnhealthyAfter = time.Second
		if faultsLong() {
			return
		}
		c.Hub.RoutingRetryBase, c.Hub.RoutingRetryMax = 50*time.Millisecond, 500*time.Millisecond
	}))
	if faultsLong() {
		outage = 10 * time.Minute
	}
	const group = "rg-faults-endpoint"
	eh := createMessagingEntity(t, s, group, "Microsoft.EventHub", "eventhubs", "")
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "outagedev")
	conn := "Endpoint=sb://" + eh.Host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + eh.Key + ";EntityPath=" + eh.Name
	routing := `{"routing":{"endpoints":{"eventHubs":[{"name":"hot","connectionString":"` + conn + `"}]},
	  "routes":[{"name":"all","source":"DeviceMessages","condition":"true","endpointNames":["hot"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"None"}`, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	namespace := func(access string) {
		putAndWait(t, s, eh.NamespaceID, eventHubAPI,
			`{"location":"westus","sku":{"name":"Standard","tier":"Standard"},"properties":{"publicNetworkAccess":"`+access+`"}}`)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	health := func() map[string]any {
		_, body := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
		for _, v := range body["value"].([]any) {
			if e := v.(map[string]any); e["endpointId"] == "hot" {
				return e
			}
		}
		return nil
	}

	d := connectDevice(t, s, h, "outagedev", key)
	const n = 300
	var closedAt, openedAt time.Time
	var during map[string]any
	d.publish(t, "outagedev", "eh", n, 10*time.Second, func() {
		namespace("Disabled")
		closedAt = time.Now()
	})
	// The rest of the outage: the endpoint must be seen failing.
	waitFor(t, outage+30*time.Second, "the endpoint reported unhealthy", func() error {
		if during = health(); during["healthStatus"] != "unhealthy" {
			return fmt.Errorf("health %v", during)
		}
		return nil
	})
	time.Sleep(time.Until(closedAt.Add(outage)))
	namespace("Enabled")
	openedAt = time.Now()

	sent, acked, _, _ := d.snapshot()
	found := map[string]int{}
	var firstAfter time.Duration
	waitFor(t, 60*time.Second, "every acknowledged message is in the event hub", func() error {
		found = map[string]int{}
		for _, ev := range readEventHub(t, s, eh) {
			var body struct{ ID string }
			if s, _ := ev["body"].(string); json.Unmarshal([]byte(s), &body) == nil {
				found[body.ID]++
			}
		}
		if firstAfter == 0 && len(found) > 0 {
			firstAfter = time.Since(openedAt)
		}
		for id := range acked {
			if found[id] == 0 {
				return fmt.Errorf("%d of %d delivered", len(found), len(acked))
			}
		}
		return nil
	})
	drained := time.Since(openedAt)
	time.Sleep(time.Second) // nothing more may arrive
	found = map[string]int{}
	for _, ev := range readEventHub(t, s, eh) {
		var body struct{ ID string }
		if s, _ := ev["body"].(string); json.Unmarshal([]byte(s), &body) == nil {
			found[body.ID]++
		}
	}
	var c faultCounts
	c.Sent = sent
	c.countDelivery(acked, found)
	t.Logf("endpoint outage (namespace closed %s; health during it %v, last error %v): %s; all delivered %s after it reopened",
		openedAt.Sub(closedAt).Round(time.Millisecond), during["healthStatus"], during["lastKnownError"], c, drained.Round(time.Millisecond))
	if c.Lost > 0 {
		t.Errorf("%d acknowledged messages never reached the event hub", c.Lost)
	}
	if c.Acked < n {
		t.Errorf("the hub refused telemetry while an endpoint was down: %d of %d acknowledged", c.Acked, n)
	}
	if c.Duplicated > 0 {
		t.Logf("%d duplicates (at-least-once: a batch refused is not delivered, so none are expected)", c.Duplicated)
	}
}

// TestFaultBlobDiskFull: the blob store's directory is an 8 MiB tmpfs the
// test mounts. 1 MiB blobs are uploaded until one does not fit: it is
// refused with a clear storage error, nothing half-written is listed or
// readable, and once a blob is deleted a new upload succeeds.
func TestFaultBlobDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mounting a tmpfs needs root")
	}
	dataDir := t.TempDir()
	blobDir := filepath.Join(dataDir, "blobs")
	if err := os.MkdirAll(blobDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", blobDir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount a tmpfs: %v: %s", err, out)
	}
	// Registered before the server starts, so it runs after the server stopped.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", blobDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", blobDir, err, out)
		}
	})
	s := testserver.Start(t, testserver.WithDataDir(dataDir))
	const group = "rg-faults-disk"
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/full", storageAPI, `{"properties":{}}`)
	cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
	blobs, err := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 1<<20)
	var stored []string
	var refusal error
	for i := range 20 {
		name := fmt.Sprintf("b%02d", i)
		if _, err := blobs.UploadBuffer(ctx, "full", name, payload, &azblob.UploadBufferOptions{BlockSize: 4 << 20}); err != nil {
			refusal = err
			break
		}
		stored = append(stored, name)
	}
	if refusal == nil {
		t.Fatalf("20 MiB fitted on an 8 MiB tmpfs")
	}
	var re *azcore.ResponseError
	errors.As(refusal, &re)
	listed, _ := containerBlobs(t, blobs, "full")
	t.Logf("disk full after %d blobs of 1 MiB: the next upload got %v; listed %d blobs", len(stored), refusal, len(listed))
	if re == nil || re.StatusCode != 500 && re.StatusCode != 507 || !strings.Contains(strings.ToLower(re.Error()), "space") && !strings.Contains(re.ErrorCode, "Insufficient") {
		t.Errorf("the upload that does not fit: %v; want a storage error saying there is no space", refusal)
	}
	if strings.Join(listed, ",") != strings.Join(stored, ",") {
		t.Errorf("listed %v, want exactly the complete uploads %v", listed, stored)
	}
	for _, name := range listed {
		resp, err := blobs.DownloadStream(ctx, "full", name, nil)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(b, payload) {
			t.Errorf("%s reads back %d bytes, not the 1 MiB uploaded", name, len(b))
		}
	}
	if _, err := blobs.DeleteBlob(ctx, "full", stored[0], nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "full", "after-delete", payload, nil); err != nil {
		t.Errorf("an upload after deleting a blob: %v", err)
	}
}

// TestFaultClockSkew: SAS tokens signed by a client whose clock is off.
// A SAS token carries only its expiry, so a clock ahead makes a token that
// lives longer (accepted, as by IoT Hub), and a clock behind one that
// expires sooner: with a one-minute token, 4 minutes behind is an expiry
// 3 minutes past, inside the 5 minutes of skew Outpost tolerates, and 10
// minutes behind is 9 minutes past and refused as expired. Checked on
// device MQTT, the service REST API and the IoT hub's AMQP CBS ($cbs
// put-token, service and device tokens).
func TestFaultClockSkew(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-faults-skew")
	key := createDevice(t, s, h, "skewdev")
	const ttl = time.Minute
	cases := []struct {
		offset time.Duration
		accept bool
	}{{4 * time.Minute, true}, {-4 * time.Minute, true}, {10 * time.Minute, true}, {-10 * time.Minute, false}}
	cbs := newCBS(t, dialAMQP(t, s, h.HostName))
	for _, c := range cases {
		signedAt := time.Now().Add(c.offset)
		devToken, _ := sas.Sign(h.HostName+"/devices/skewdev", key, "", signedAt.Add(ttl))
		svcToken, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", signedAt.Add(ttl))

		opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
			SetClientID("skewdev").SetUsername(h.HostName + "/skewdev/?api-version=2021-04-12").SetPassword(devToken).
			SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
		client := paho.NewClient(opts)
		tok := client.Connect()
		tok.WaitTimeout(10 * time.Second)
		mqttErr := tok.Error()
		client.Disconnect(0)

		rest := serviceRequest(s, h, "GET", "/devices/skewdev", "", time.Now().Add(c.offset), ttl)
		svcCode, svcDesc := cbs.putToken(t, h.HostName, svcToken)
		devCode, devDesc := cbs.putToken(t, h.HostName+"/devices/skewdev", devToken)
		t.Logf("clock %+v, token expiry %s from the server's now: MQTT connect %v; REST %d; CBS service %d %s; CBS device %d %s",
			c.offset, time.Until(signedAt.Add(ttl)).Round(time.Second), mqttErr, rest.Status, svcCode, svcDesc, devCode, devDesc)
		if c.accept {
			if mqttErr != nil || rest.Status != 200 || svcCode != 200 || devCode != 200 {
				t.Errorf("clock %+v: want every surface to accept", c.offset)
			}
			continue
		}
		if mqttErr == nil || !strings.Contains(mqttErr.Error(), "not Authorized") && !strings.Contains(mqttErr.Error(), "bad user name or password") {
			t.Errorf("clock %+v: MQTT connect %v, want a refusal (not authorized)", c.offset, mqttErr)
		}
		if rest.Status != 401 || !strings.Contains(rest.Body, "expired") {
			t.Errorf("clock %+v: REST %s, want 401 naming the expiry", c.offset, rest)
		}
		if svcCode != 401 || devCode != 401 {
			t.Errorf("clock %+v: CBS %d/%d, want 401", c.offset, svcCode, devCode)
		}
	}
}
