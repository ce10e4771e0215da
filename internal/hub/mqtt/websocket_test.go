package mqtt

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestWebSocket(t *testing.T) {
	f := newTestServer(t)
	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, f.srv.WebSocketHandler())
	hs := httptest.NewUnstartedServer(mux)
	hs.TLS = f.pki.serverTLS()
	// Outpost's HTTPS server has request timeouts; an upgraded MQTT session must outlive them.
	hs.Config.ReadTimeout = 300 * time.Millisecond
	hs.Config.WriteTimeout = 300 * time.Millisecond
	hs.StartTLS()
	t.Cleanup(hs.Close)
	wsURL := "wss://" + strings.TrimPrefix(hs.URL, "https://") + WebSocketPath

	c, lost := f.connect("dev1", func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker(wsURL)
	})
	time.Sleep(500 * time.Millisecond)
	publishOK(t, c, "devices/dev1/messages/events/%24.mid=ws-1", 1, []byte("over websocket"))
	got := make(chan paho.Message, 1)
	subscribeOK(t, c, "devices/dev1/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m })
	acked := make(chan error, 1)
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverC2D, Payload: []byte("down"), Acked: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "down" {
			t.Errorf("payload %q", m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no C2D over websocket")
	}
	if err := <-acked; err != nil {
		t.Errorf("Acked(%v)", err)
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		ms := f.h.all("telemetry")
		if len(ms) != 1 || ms[0].msg.Properties[PropMessageID] != "ws-1" {
			return fmt.Errorf("telemetry %+v", ms)
		}
		return nil
	})

	// The topic space is the same: another device's topic ends the WebSocket connection.
	c.Publish("devices/dev2/messages/events/", 1, false, []byte("nope"))
	lost.wait(t, 5*time.Second)

	// Without the mqtt subprotocol the upgrade is refused.
	req, _ := http.NewRequest(http.MethodGet, hs.URL+WebSocketPath, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d without subprotocol", resp.StatusCode)
	}
}
