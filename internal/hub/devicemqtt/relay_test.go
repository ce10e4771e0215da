package devicemqtt_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// relayNode is one node of a two-node fixture: its device sessions, MQTT
// listener and cloud-to-device queue, sharing the store and the bus with
// the other node.
type relayNode struct {
	hub  *devicemqtt.Hub
	addr string
	// stopRelay ends the node's relay (as a node shutting down does).
	stopRelay context.CancelFunc
}

type relayFixture struct {
	nodes [2]relayNode
	queue *c2d.Queue
	key   string // the device's key
}

// newRelayFixture starts two nodes over one store and one (embedded) NATS,
// each with a relay, as two `outpost serve` processes on one PostgreSQL
// and NATS cluster are.
func newRelayFixture(t *testing.T) *relayFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/mhub"
	if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: "mhub", Body: []byte(`{"properties":{"hostName":"` + hubHost + `"}}`)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "relay"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	f := &relayFixture{queue: c2d.New(b, time.Now)}
	if err := f.queue.EnsureHub(ctx, "mhub"); err != nil {
		t.Fatal(err)
	}
	f.key = base64.StdEncoding.EncodeToString([]byte("relay-device-key-0123456789abcdef"))
	for i := range f.nodes {
		hubs := hub.NewDirectory(st.Resources(), "outpost.localhost", "")
		presence := devicemqtt.NewPresence()
		reg := registry.New(st.Devices(), presence, time.Now)
		if i == 0 {
			for _, dev := range []string{"dev1", "idle"} {
				if _, _, err := reg.PutIdentity(ctx, "mhub", dev, "", registry.Identity{DeviceID: dev, Authentication: registry.Authentication{
					Type: "sas", SymmetricKey: &registry.SymmetricKey{PrimaryKey: f.key, SecondaryKey: f.key}}}, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		h := devicemqtt.New(deviceauth.New(hubs, reg, nil, time.Now), reg, nil, presence, log, time.Now)
		h.EnableC2D(f.queue, hubs)
		r := devicemqtt.NewRelay(b.Conn(), b.Subject(), log)
		h.SetRelay(r)
		srv, err := mqtt.New(mqtt.Config{}, h, h, log)
		if err != nil {
			t.Fatal(err)
		}
		h.SetServer(srv)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		go srv.Serve(ctx, ln) //nolint:errcheck
		go h.RunC2D(ctx)      //nolint:errcheck
		go r.Run(rctx)        //nolint:errcheck
		f.nodes[i] = relayNode{hub: h, addr: ln.Addr().String(), stopRelay: stop}
	}
	return f
}

// connect connects dev1 to node i.
func (f *relayFixture) connect(t *testing.T, i int) paho.Client {
	t.Helper()
	token, _ := sas.Sign(hubHost+"/devices/dev1", f.key, "", time.Now().Add(time.Hour))
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.nodes[i].addr).SetClientID("dev1").
		SetUsername(hubHost + "/dev1/?api-version=2021-04-12").SetPassword(token).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to node %d: %v", i, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	// Read the twin, as the device SDKs do after connecting: the node
	// answers only once it has registered the connection (relay included).
	twin := subscribeTo(t, c, "$iothub/twin/res/#", 0)
	c.Publish("$iothub/twin/GET/?$rid=connect", 0, false, "")
	select {
	case m := <-twin:
		if !strings.HasPrefix(m.Topic(), "$iothub/twin/res/200/") {
			t.Fatalf("twin GET on node %d: %s %s", i, m.Topic(), m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("twin GET on node %d: no answer", i)
	}
	c.Unsubscribe("$iothub/twin/res/#").WaitTimeout(time.Second)
	return c
}

func subscribeTo(t *testing.T, c paho.Client, topic string, qos byte) <-chan paho.Message {
	t.Helper()
	got := make(chan paho.Message, 8)
	if tok := c.Subscribe(topic, qos, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return got
}

func methodError(t *testing.T, err error) *devicemqtt.MethodError {
	t.Helper()
	var me *devicemqtt.MethodError
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T), want a *MethodError", err, err)
	}
	return me
}

// TestRelayMethods: a method invoked on node 0 reaches the device on node 1
// and its answer comes back; a device connected nowhere, or not listening
// for methods, is DeviceNotOnline at once; a device that does not answer
// is a GatewayTimeout after the call's timeout, not the relay's.
func TestRelayMethods(t *testing.T) {
	f := newRelayFixture(t)
	ctx := context.Background()

	start := time.Now()
	_, err := f.nodes[0].hub.InvokeMethod(ctx, "mhub", "idle", "", "ping", nil, 10*time.Second)
	if me := methodError(t, err); me.Code != "DeviceNotOnline" || me.Status != 404 || time.Since(start) > 2*time.Second {
		t.Fatalf("method on a device connected nowhere: %+v after %s, want DeviceNotOnline at once", me, time.Since(start))
	}

	c := f.connect(t, 1)
	_, err = f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", nil, 10*time.Second)
	if me := methodError(t, err); me.Code != "DeviceNotOnline" || !strings.Contains(me.Message, "dev1") {
		t.Fatalf("method on a device on the other node that did not subscribe: %+v, want DeviceNotOnline naming it", me)
	}

	var silent atomic.Bool
	requests := subscribeTo(t, c, "$iothub/methods/POST/#", 0)
	go func() {
		for m := range requests {
			if silent.Load() {
				continue
			}
			_, rid, _ := strings.Cut(m.Topic(), "?$rid=")
			c.Publish("$iothub/methods/res/201/?$rid="+rid, 0, false, `{"got":`+string(m.Payload())+`}`)
		}
	}()
	res, err := f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", json.RawMessage(`{"n":7}`), 10*time.Second)
	if err != nil || res.Status != 201 || string(res.Payload) != `{"got":{"n":7}}` {
		t.Fatalf("method through the relay: %+v (payload %s), %v", res, res.Payload, err)
	}
	// The device's own node answers without the relay, as before.
	if res, err := f.nodes[1].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", json.RawMessage(`1`), 10*time.Second); err != nil || res.Status != 201 {
		t.Fatalf("method on the device's own node: %+v, %v", res, err)
	}

	silent.Store(true)
	start = time.Now()
	_, err = f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", nil, 500*time.Millisecond)
	if me := methodError(t, err); me.Code != "GatewayTimeout" || me.Status != 504 || time.Since(start) > 3*time.Second {
		t.Fatalf("method the device does not answer: %+v after %s, want GatewayTimeout after 500ms", me, time.Since(start))
	}

	// A call racing the disconnect may still reach the closing connection
	// and time out; soon after, the device is offline everywhere.
	c.Disconnect(0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", nil, 200*time.Millisecond)
		if me := methodError(t, err); me.Code == "DeviceNotOnline" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the device left node 1, node 0 still reaches it: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelayDesiredAndC2D: a desired-property patch and a cloud-to-device
// message sent through node 0 reach the device on node 1, the patch with
// its $version and its numbers as written.
func TestRelayDesiredAndC2D(t *testing.T) {
	f := newRelayFixture(t)
	ctx := context.Background()
	c := f.connect(t, 1)
	desired := subscribeTo(t, c, "$iothub/twin/PATCH/properties/desired/#", 0)
	f.nodes[0].hub.DesiredChanged(ctx, registry.TwinChange{Hub: "mhub", DeviceID: "dev1",
		Desired: map[string]any{"rate": json.Number("12345678901234567890"), "$version": int64(3)}})
	select {
	case m := <-desired:
		if string(m.Payload()) != `{"$version":3,"rate":12345678901234567890}` || !strings.Contains(m.Topic(), "$version=3") {
			t.Fatalf("desired patch through the relay: %s on %s", m.Payload(), m.Topic())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a desired patch sent through node 0 never reached the device on node 1")
	}

	messages := subscribeTo(t, c, "devices/dev1/messages/devicebound/#", 1)
	time.Sleep(100 * time.Millisecond) // the connect-time wake found nothing queued
	if err := f.queue.Send(ctx, "mhub", "dev1", "", c2d.Message{MessageID: "via-relay", Payload: []byte("hi")},
		devicemqtt.C2DSettings(hub.Hub{C2DMaxDeliveryCount: 10})); err != nil {
		t.Fatal(err)
	}
	f.nodes[0].hub.NotifyC2D(mqtt.DeviceKey{Hub: "mhub", DeviceID: "dev1"})
	select {
	case m := <-messages:
		if string(m.Payload()) != "hi" {
			t.Fatalf("cloud-to-device through the relay: %q on %s", m.Payload(), m.Topic())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cloud-to-device message queued on node 0 never reached the device on node 1")
	}
}

// TestRelayStoppedNode: once a node's relay stops (the node shuts down and
// its connections drain), its devices are offline for the other nodes at
// once, and a call racing the stop is answered rather than left to time
// out.
func TestRelayStoppedNode(t *testing.T) {
	f := newRelayFixture(t)
	ctx := context.Background()
	c := f.connect(t, 1)
	requests := subscribeTo(t, c, "$iothub/methods/POST/#", 0)
	go func() {
		for m := range requests {
			_, rid, _ := strings.Cut(m.Topic(), "?$rid=")
			c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{}`)
		}
	}()
	if _, err := f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", nil, 10*time.Second); err != nil {
		t.Fatalf("method through the relay before it stopped: %v", err)
	}
	f.nodes[1].stopRelay()
	deadline := time.Now().Add(5 * time.Second)
	for {
		start := time.Now()
		_, err := f.nodes[0].hub.InvokeMethod(ctx, "mhub", "dev1", "", "ping", nil, 10*time.Second)
		var me *devicemqtt.MethodError
		if errors.As(err, &me) && me.Code == "DeviceNotOnline" && time.Since(start) < 2*time.Second {
			return
		}
		// The one call that reached the relay before it noticed the stop
		// may still run on the device, or fail with the stop.
		if time.Since(start) > 2*time.Second || time.Now().After(deadline) {
			t.Fatalf("the device of a node whose relay stopped: %v after %s, want DeviceNotOnline at once", err, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
