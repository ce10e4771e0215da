package e2e

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestC2D: a cloud-to-device message queued through Outpost reaches an MQTT
// device that subscribed, and one for an HTTPS device is received, then
// completed by its lock token.
func TestC2D(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-c2d")
	key := createDevice(t, s, h, "c2d-dev")
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	send := func(body string) {
		t.Helper()
		if code, resp := op.do("POST", "/outpost/iothubs/"+h.Name+"/devices/c2d-dev/messages", body); code != 204 {
			t.Fatalf("send: %d %v", code, resp)
		}
	}

	token, _ := sas.Sign(h.HostName+"/devices/c2d-dev", key, "", time.Now().Add(time.Hour))
	got := make(chan paho.Message, 4)
	opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
		SetClientID("c2d-dev").SetUsername(h.HostName + "/c2d-dev/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("devices/c2d-dev/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	send(`{"data":"hello","messageId":"m1","properties":{"color":"blue"}}`)
	select {
	case m := <-got:
		if string(m.Payload()) != "hello" || !strings.Contains(m.Topic(), "color=blue") || !strings.Contains(m.Topic(), "%24.mid=m1") {
			t.Errorf("c2d over MQTT: topic %s payload %q", m.Topic(), m.Payload())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the MQTT device never got the message")
	}
	c.Disconnect(100)

	// A message queued while the device is connected but not yet subscribed
	// is delivered once it subscribes.
	late := paho.NewClient(opts)
	if tok := late.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnect: %v", tok.Error())
	}
	send(`{"data":"while unsubscribed","messageId":"m-late"}`)
	time.Sleep(1500 * time.Millisecond)
	if tok := late.Subscribe("devices/c2d-dev/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "while unsubscribed" {
			t.Errorf("late subscriber got %q", m.Payload())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a message queued before the subscription was never delivered")
	}
	late.Disconnect(100)

	// HTTPS: receive, then complete.
	send(`{"data":"over https","messageId":"m2"}`)
	hc := s.HTTPClient()
	recv := func() *http.Response {
		req, _ := http.NewRequest("GET", "https://"+h.HostName+"/devices/c2d-dev/messages/devicebound?api-version=2021-04-12", nil)
		req.Header.Set("Authorization", token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var lock string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := recv()
		resp.Body.Close()
		if resp.StatusCode == 200 && resp.Header.Get("iothub-messageid") == "m2" {
			lock = resp.Header.Get("ETag")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS receive: %s", resp.Status)
		}
	}
	req, _ := http.NewRequest("DELETE", "https://"+h.HostName+"/devices/c2d-dev/messages/devicebound/"+strings.Trim(lock, `"`)+"?api-version=2021-04-12", nil)
	req.Header.Set("Authorization", token)
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("complete: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if r := recv(); r.StatusCode != 204 {
		t.Errorf("after completing, receive = %s, want 204 (empty)", r.Status)
	}
}
