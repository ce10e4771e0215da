package devicemqtt_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
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

const hubHost = "mhub.outpost.localhost"

// TestC2DOverMQTTGivesFeedback: a message pushed to a device that
// subscribes only after connecting is delivered once it does, and the
// device's PUBACK completes it with "Success" feedback naming the device's
// generation (looked up: the message was sent without one).
func TestC2DOverMQTTGivesFeedback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
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
	hubs := hub.NewDirectory(st.Resources(), "outpost.localhost", "")
	presence := devicemqtt.NewPresence()
	reg := registry.New(st.Devices(), presence, time.Now)
	key := base64.StdEncoding.EncodeToString([]byte("mqtt-device-key-0123456789abcdef"))
	dev, _, err := reg.PutIdentity(ctx, "mhub", "dev1", "", registry.Identity{DeviceID: "dev1", Authentication: registry.Authentication{
		Type: "sas", SymmetricKey: &registry.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	q := c2d.New(b, time.Now)
	q.SetGenerationLookup(func(ctx context.Context, hub, deviceID, moduleID string) string {
		id, _, _ := reg.Lookup(ctx, hub, deviceID, moduleID)
		return id.GenerationID
	})
	if err := q.EnsureHub(ctx, "mhub"); err != nil {
		t.Fatal(err)
	}

	h := devicemqtt.New(deviceauth.New(hubs, reg, nil, time.Now), reg, nil, presence, slog.New(slog.DiscardHandler), time.Now)
	h.EnableC2D(q, hubs)
	srv, err := mqtt.New(mqtt.Config{}, h, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.SetServer(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, ln) //nolint:errcheck
	go h.RunC2D(ctx)      //nolint:errcheck

	token, _ := sas.Sign(hubHost+"/devices/dev1", key, "", time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID("dev1").
		SetUsername(hubHost + "/dev1/?api-version=2021-04-12").SetPassword(token).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	client := paho.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })

	if err := q.Send(ctx, "mhub", "dev1", "", c2d.Message{MessageID: "over-mqtt", Ack: "full", Payload: []byte("hi")},
		devicemqtt.C2DSettings(hub.Hub{C2DMaxDeliveryCount: 10})); err != nil {
		t.Fatal(err)
	}
	h.NotifyC2D(mqtt.DeviceKey{Hub: "mhub", DeviceID: "dev1"})
	time.Sleep(1500 * time.Millisecond) // the pusher holds the message for the late subscriber
	got := make(chan paho.Message, 1)
	if tok := client.Subscribe("devices/dev1/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "hi" {
			t.Fatalf("payload %q on %s", m.Payload(), m.Topic())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message after subscribing")
	}

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		fb, err := q.ReceiveFeedback(ctx, "mhub", c2d.FeedbackSettings{}, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if fb == nil {
			continue
		}
		r := fb.Records[0]
		if len(fb.Records) != 1 || r.OriginalMessageID != "over-mqtt" || r.StatusCode != c2d.StatusSuccess || r.DeviceID != "dev1" ||
			r.DeviceGenerationID != dev.GenerationID {
			t.Fatalf("feedback %+v (generation %s)", fb.Records, dev.GenerationID)
		}
		return
	}
	t.Fatal("no feedback after the PUBACK")
}
