package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestRoutingSourceEvents: creating a device, connecting and disconnecting
// it, patching its twin and deleting it produce IoT Hub's lifecycle,
// connection-state and twin-change events on the hub's stream when routes
// read those sources.
func TestRoutingSourceEvents(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-sources")
	// Events are stored only for sources a route reads.
	putAndWait(t, s, h.ID, "2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"properties":{"routing":{"routes":[
	  {"name":"twins","source":"TwinChangeEvents","condition":"true","endpointNames":["events"],"isEnabled":true},
	  {"name":"lifecycle","source":"DeviceLifecycleEvents","condition":"true","endpointNames":["events"],"isEnabled":true},
	  {"name":"connections","source":"DeviceConnectionStateEvents","condition":"true","endpointNames":["events"],"isEnabled":true}],
	  "fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}}}}`)
	key := createDevice(t, s, h, "ev-dev")
	token, _ := sas.Sign(h.HostName+"/devices/ev-dev", key, "", time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
		SetClientID("ev-dev").SetUsername(h.HostName + "/ev-dev/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	c.Disconnect(100)
	owner, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	call := func(method, path, body string) {
		req, _ := http.NewRequest(method, "https://"+h.HostName+path+"?api-version=2021-04-12", strings.NewReader(body))
		req.Header.Set("Authorization", owner)
		req.Header.Set("If-Match", "*")
		resp, err := s.HTTPClient().Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %v %v", method, path, resp.Status, err)
		}
		resp.Body.Close()
	}
	call("PATCH", "/twins/ev-dev", `{"tags":{"site":"a"},"properties":{"desired":{"rate":5}}}`)
	call("DELETE", "/devices/ev-dev", "")

	want := []string{"createDeviceIdentity", "deviceConnected", "deviceDisconnected", "updateTwin", "deleteDeviceIdentity"}
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errDone := errors.New("done")
	err := s.App.Telemetry().ReadSources(ctx, h.Name, func(source string, m telemetry.Message) error {
		op := m.App["opType"]
		got = append(got, op)
		if m.App["hubName"] != h.Name || m.App["deviceId"] != "ev-dev" || m.System[telemetry.PropContentType] != "application/json" || m.App["operationTimestamp"] == "" {
			t.Errorf("%s event properties: %+v", op, m)
		}
		var body map[string]any
		if json.Unmarshal(m.Payload, &body) != nil {
			t.Errorf("%s body is not JSON: %s", op, m.Payload)
		}
		switch op {
		case "updateTwin":
			if source != telemetry.SourceTwinChange || body["tags"].(map[string]any)["site"] != "a" {
				t.Errorf("twin change: %s %s", source, m.Payload)
			}
		case "deviceConnected", "deviceDisconnected":
			if source != telemetry.SourceConnectionState || len(body["sequenceNumber"].(string)) != 64 {
				t.Errorf("connection: %s %s", source, m.Payload)
			}
		case "createDeviceIdentity", "deleteDeviceIdentity":
			if source != telemetry.SourceLifecycle || body["deviceId"] != "ev-dev" {
				t.Errorf("lifecycle: %s %s", source, m.Payload)
			}
		}
		if len(got) == len(want) {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("events %v (%v), want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events in order %v, want %v", got, want)
		}
	}
}

// TestUnroutedSourcesAreNotStored: a hub whose routes read no event source
// stores no events — a bulk import's lifecycle events would otherwise
// stand in the routers' way.
func TestUnroutedSourcesAreNotStored(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-quiet")
	owner, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	createDevice(t, s, h, "quiet-dev")
	req, _ := http.NewRequest("PATCH", "https://"+h.HostName+"/twins/quiet-dev?api-version=2021-04-12", strings.NewReader(`{"tags":{"site":"b"}}`))
	req.Header.Set("Authorization", owner)
	req.Header.Set("If-Match", "*")
	resp, err := s.HTTPClient().Do(req)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("patch twin: %v %v", resp, err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var got []string
	_ = s.App.Telemetry().ReadSources(ctx, h.Name, func(source string, m telemetry.Message) error {
		got = append(got, source+" "+m.App["opType"])
		return nil
	})
	if len(got) != 0 {
		t.Errorf("events stored for a hub without event routes: %v", got)
	}
}
