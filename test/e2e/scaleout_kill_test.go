package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestScaleOutKillNode kills one node of two with SIGKILL while a device
// connected to it publishes QoS 1 telemetry. The device has both nodes'
// addresses (as behind a TCP load balancer) and reconnects to the other
// node by itself; it goes on publishing there. Every message it got a
// PUBACK for — from either node — must be on the hub's stream; messages
// the killed node stored but could not acknowledge come again from the
// device's retry and are reported as duplicates.
func TestScaleOutKillNode(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "device endpoints need ports 443 and 8883 on a loopback address of their own (run as root)")
	}
	bin := testserver.BuildBinary(t)
	a := testserver.Start(t, testserver.WithPostgres(), testserver.WithExternalNATS())
	b := testserver.StartPeerProcess(t, bin, a)
	h := createHub(t, a, "rg-scaleout-kill")
	key := createDevice(t, a, h, "survivor")

	const beforeKill, total = 300, 600
	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		sent      int
		connects  atomic.Int32
		lostConns atomic.Int32
		killedAt  time.Time
		firstAck  time.Time // first PUBACK after the kill
		killed    = make(chan struct{})
		killOnce  sync.Once
	)
	token, _ := sas.Sign(h.HostName+"/devices/survivor", key, "", time.Now().Add(time.Hour))
	// B first: the device starts on the node that will die. Persistent
	// session and paho's in-memory store: unacknowledged publishes are sent
	// again after the reconnect, as the device SDKs do.
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + net.JoinHostPort(b.IP, "8883")).
		AddBroker("ssl://" + net.JoinHostPort(a.IP, "8883")).
		SetClientID("survivor").SetUsername(h.HostName + "/survivor/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: a.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(500 * time.Millisecond).SetConnectTimeout(3 * time.Second).
		SetOnConnectHandler(func(paho.Client) { connects.Add(1) }).
		SetConnectionLostHandler(func(paho.Client, error) { lostConns.Add(1) })
	client := paho.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect through node B: %v", tok.Error())
	}
	defer client.Disconnect(100)

	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		mu.Lock()
		done := len(acked) >= total
		mu.Unlock()
		if done {
			break
		}
		sem <- struct{}{}
		id := fmt.Sprintf("kill-%d", i)
		mu.Lock()
		sent++
		mu.Unlock()
		tok := client.Publish("devices/survivor/messages/events/$.mid="+id, 1, false, `{"i":`+fmt.Sprint(i)+`}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				return
			}
			mu.Lock()
			acked[id] = true
			n := len(acked)
			if !killedAt.IsZero() && firstAck.IsZero() {
				select {
				case <-killed:
					firstAck = time.Now()
				default:
				}
			}
			mu.Unlock()
			if n == beforeKill {
				killOnce.Do(func() {
					go func() {
						mu.Lock()
						killedAt = time.Now()
						mu.Unlock()
						b.Kill(t)
						close(killed)
					}()
				})
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	nAcked, nSent, recovery := len(acked), sent, firstAck.Sub(killedAt)
	mu.Unlock()
	select {
	case <-killed:
	default:
		t.Fatalf("node B was never killed: %d of %d sent were acknowledged", nAcked, nSent)
	}
	if nAcked < total {
		t.Fatalf("after the kill the device did not go on through node A: %d of %d sent acknowledged within 90s (connects %d, lost connections %d)",
			nAcked, nSent, connects.Load(), lostConns.Load())
	}
	if connects.Load() < 2 || lostConns.Load() < 1 {
		t.Errorf("the device connected %d times and lost %d connections; want a reconnect after the kill", connects.Load(), lostConns.Load())
	}

	// Read the hub's stream back through the shared NATS.
	bs, err := bus.Open(context.Background(), bus.Config{URL: a.Config.NATS.URL, StreamPrefix: a.Config.NATS.StreamPrefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close(context.Background())
	found := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = telemetry.New(bs, time.Now).Read(ctx, h.Name, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
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
	t.Logf("kill -9 of node B under load: sent %d, acknowledged %d, on the stream %d distinct (%d copies), lost %d, duplicated %d; "+
		"first acknowledgement through node A %s after the kill; device connects %d, lost connections %d",
		nSent, nAcked, len(found), len(found)+dups, lost, dups, recovery.Round(time.Millisecond), connects.Load(), lostConns.Load())
	if lost > 0 {
		t.Errorf("%d acknowledged messages are missing from the hub's stream after node B was killed", lost)
	}
}
