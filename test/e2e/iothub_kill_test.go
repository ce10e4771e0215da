package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestKillDuringQoS1Publish kills the outpost process with SIGKILL while a
// device publishes QoS 1 telemetry, restarts it, and checks that every
// message the device got a PUBACK for is on the hub's stream.
func TestKillDuringQoS1Publish(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "device endpoints need ports 443 and 8883 on a loopback address of their own (run as root)")
	}
	bin := testserver.BuildBinary(t)
	for _, tier := range []struct {
		name string
		args func(t *testing.T) ([]string, bus.Config)
	}{
		{"embedded", func(*testing.T) ([]string, bus.Config) { return nil, bus.Config{} }},
		{"postgres-nats", func(t *testing.T) ([]string, bus.Config) {
			url, prefix := testenv.NATSURL(t), testenv.StreamPrefix(t)
			return []string{"--store-driver", "postgres", "--store-dsn", testenv.PostgresDSN(t), "--nats-url", url, "--nats-stream-prefix", prefix},
				bus.Config{URL: url, StreamPrefix: prefix}
		}},
	} {
		t.Run(tier.name, func(t *testing.T) {
			t.Parallel()
			args, busCfg := tier.args(t)
			p := testserver.StartProcess(t, bin, args...)
			hubName, host, ownerKey := processHub(t, p)
			deviceKey := processDevice(t, p, host, ownerKey, "killdev")

			acked, sent := publishUntilKilled(t, p, host, deviceKey, "killdev")
			p.Restart(t)

			// Read the stream back: through the external NATS, or from the
			// embedded JetStream directory once the process has stopped.
			if busCfg.URL == "" {
				p.Stop(t)
				busCfg = bus.Config{StoreDir: filepath.Join(p.DataDir, "jetstream")}
			}
			b, err := bus.Open(context.Background(), busCfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			found := map[string]int{}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = telemetry.New(b, time.Now).Read(ctx, hubName, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
				found[m.System[telemetry.PropMessageID]]++
				return nil
			})
			lost, dups := 0, 0
			for id := range acked {
				if found[id] == 0 {
					lost++
				}
			}
			for _, n := range found {
				if n > 1 {
					dups += n - 1
				}
			}
			t.Logf("sent %d, acknowledged %d, on the stream %d, lost %d, duplicated %d", sent, len(acked), len(found), lost, dups)
			if len(acked) < 50 {
				t.Fatalf("only %d messages were acknowledged before the kill; the test proves nothing", len(acked))
			}
			if lost > 0 {
				t.Errorf("%d acknowledged messages are missing after kill -9", lost)
			}
		})
	}
}

// processHub creates a hub on a subprocess and returns its name, host name
// and iothubowner key.
func processHub(t *testing.T, p *testserver.Process) (string, string, string) {
	t.Helper()
	rt := p.Runtime(t)
	token := p.Token(t, testserver.ARMResource)
	c := p.HTTPClient(t)
	do := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, p.Endpoint+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	name := fmt.Sprintf("killhub%d", time.Now().UnixNano()%1e9)
	id := "/subscriptions/" + rt.SubscriptionID + "/resourceGroups/rg-kill/providers/Microsoft.Devices/IotHubs/" + name
	do("PUT", "/subscriptions/"+rt.SubscriptionID+"/resourcegroups/rg-kill?api-version=2021-04-01", `{"location":"westus"}`)
	do("PUT", id+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1}}`)
	deadline := time.Now().Add(30 * time.Second)
	var host string
	for {
		props, _ := do("GET", id+"?api-version=2023-06-30", "")["properties"].(map[string]any)
		if props["provisioningState"] == "Succeeded" {
			host = props["hostName"].(string)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hub not provisioned")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, k := range do("POST", id+"/listkeys?api-version=2023-06-30", "")["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			return name, host, m["primaryKey"].(string)
		}
	}
	t.Fatal("no iothubowner key")
	return "", "", ""
}

// hubClient dials the subprocess's address for the hub host name.
func hubClient(t *testing.T, p *testserver.Process, host string) *http.Client {
	t.Helper()
	c := p.HTTPClient(t)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(p.IP, port))
	}
	return c
}

func processDevice(t *testing.T, p *testserver.Process, host, ownerKey, id string) string {
	t.Helper()
	token, _ := sas.Sign(host, ownerKey, "iothubowner", time.Now().Add(time.Hour))
	req, _ := http.NewRequest("PUT", "https://"+host+"/devices/"+id+"?api-version=2021-04-12", strings.NewReader(`{"deviceId":"`+id+`"}`))
	req.Header.Set("Authorization", token)
	resp, err := hubClient(t, p, host).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var dev struct {
		Authentication struct{ SymmetricKey struct{ PrimaryKey string } }
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &dev) != nil {
		t.Fatalf("create device: %s %s", resp.Status, b)
	}
	return dev.Authentication.SymmetricKey.PrimaryKey
}

// publishUntilKilled publishes QoS 1 messages with 8 in flight; after 300
// acknowledgements it kills the process and returns the acknowledged ids.
func publishUntilKilled(t *testing.T, p *testserver.Process, host, key, deviceID string) (map[string]bool, int) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(p.DataDir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	token, _ := sas.Sign(host+"/devices/"+deviceID, key, "", time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(p.IP, "8883")).
		SetClientID(deviceID).SetUsername(host + "/" + deviceID + "/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: host}).SetAutoReconnect(false).SetConnectRetry(false).
		SetProtocolVersion(4).SetCleanSession(true)
	client := paho.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer client.Disconnect(0)
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		killed = make(chan struct{})
		once   sync.Once
		sent   int
	)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	// The window only bounds a hung run: 300 acknowledgements take a second
	// on a quiet machine, but CI runs this beside the az and browser tiers
	// on two cores, where one run took more than 20 s.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case <-killed:
			wg.Wait()
			return acked, sent
		case sem <- struct{}{}:
		}
		id := fmt.Sprintf("k-%d", i)
		sent++
		tok := client.Publish("devices/"+deviceID+"/messages/events/$.mid="+id, 1, false, []byte(`{"i":`+fmt.Sprint(i)+`}`))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				mu.Lock()
				acked[id] = true
				n := len(acked)
				mu.Unlock()
				if n == 300 {
					once.Do(func() { p.Kill(t); close(killed) })
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("the publish run ended without reaching 300 acknowledgements: %d of %d sent were acknowledged", len(acked), sent)
	return nil, 0
}
