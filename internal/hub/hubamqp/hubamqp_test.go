package hubamqp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
)

func str(s string) *string { return &s }

// c2dMessage is what azure-iothub sends: `to`, ids (a uuid-shaped id as an
// AMQP uuid), iothub-ack and user properties as application properties.
func c2dMessage(to string, id any, ack string, body string) *goamqp.Message {
	m := &goamqp.Message{
		Properties:            &goamqp.MessageProperties{To: str(to), MessageID: id, CorrelationID: uint64(42)},
		ApplicationProperties: map[string]any{"color": "blue"},
		Data:                  [][]byte{[]byte(body)},
	}
	if ack != "" {
		m.ApplicationProperties["iothub-ack"] = ack
	}
	return m
}

// feedbackRecords receives one feedback message and accepts it.
func feedbackRecords(t *testing.T, ctx context.Context, fb *goamqp.Receiver) []c2d.FeedbackRecord {
	t.Helper()
	m, err := fb.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("feedback: %v", err)
	}
	if ct := m.Properties.ContentType; ct == nil || *ct != "application/vnd.microsoft.iothub.feedback.json" {
		t.Errorf("feedback content-type %v", ct)
	}
	var recs []c2d.FeedbackRecord
	if err := json.Unmarshal(m.GetData(), &recs); err != nil {
		t.Fatalf("feedback body %q: %v", m.GetData(), err)
	}
	if err := fb.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestC2DSendReceiveFeedback: the service sends with ack full; the device
// receives the message with its ids, `to`, properties and delivery count;
// released, it comes again; accepted, the service gets "Success" feedback;
// rejected, "Rejected".
func TestC2DSendReceiveFeedback(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 30*time.Second)
	svc := f.service(t)
	snd, err := svc.NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	uuid := goamqp.UUID{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if err := snd.Send(ctx, c2dMessage("/devices/dev1/messages/devicebound", uuid, "full", "hello"), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := snd.Send(ctx, c2dMessage("/devices/dev1/messages/devicebound", "second", "negative", "bye"), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := <-f.sentNudge; got != "dev1" {
		t.Errorf("C2DSent for %q", got)
	}

	dev := f.device(t, "dev1", "")
	rcv, err := dev.NewReceiver(ctx, "/devices/dev1/messages/devicebound", &goamqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Properties
	if string(m.GetData()) != "hello" || p.MessageID != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" || p.CorrelationID != "42" ||
		p.To == nil || *p.To != "/devices/dev1/messages/devicebound" || m.ApplicationProperties["color"] != "blue" ||
		m.ApplicationProperties["iothub-ack"] != "full" || m.Header == nil || m.Header.DeliveryCount != 0 {
		t.Fatalf("received %+v %+v %+v %+v", m.Properties, m.ApplicationProperties, m.Header, string(m.GetData()))
	}
	if err := rcv.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	// The released message comes again (before or after the second one).
	for helloAgain, bye := false, false; !helloAgain || !bye; {
		m, err = rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch string(m.GetData()) {
		case "hello":
			if m.Header.DeliveryCount != 1 {
				t.Fatalf("after release: delivery count %d", m.Header.DeliveryCount)
			}
			helloAgain = true
			err = rcv.AcceptMessage(ctx, m)
		case "bye":
			bye = true
			err = rcv.RejectMessage(ctx, m, nil)
		default:
			t.Fatalf("unexpected %q", m.GetData())
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	fb, err := svc.NewReceiver(ctx, "/messages/serviceBound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]c2d.FeedbackRecord{}
	for len(got) < 2 {
		for _, r := range feedbackRecords(t, ctx, fb) {
			got[r.OriginalMessageID] = r
		}
	}
	ident, _, _ := f.reg.Lookup(context.Background(), hubName, "dev1", "")
	ok := got["6ba7b810-9dad-11d1-80b4-00c04fd430c8"]
	if ok.StatusCode != "Success" || ok.DeviceID != "dev1" || ok.DeviceGenerationID != ident.GenerationID || ok.EnqueuedTimeUTC.IsZero() {
		t.Errorf("success record %+v (generation %s)", ok, ident.GenerationID)
	}
	if r := got["second"]; r.StatusCode != "Rejected" || r.DeviceID != "dev1" {
		t.Errorf("rejected record %+v", r)
	}
	if ev := f.presence.seen(); len(ev) == 0 || ev[0] != "+dev1" {
		t.Errorf("presence %v", ev)
	}
}

// TestC2DFeedbackFromHTTPSPath: a message completed through the lock-token
// path (the HTTPS transport's) gives feedback on the AMQP receiver too.
func TestC2DFeedbackFromHTTPSPath(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	if err := f.queue.Send(ctx, hubName, "dev2", "", c2d.Message{MessageID: "via-https", Ack: "positive"}, c2d.Settings{}); err != nil {
		t.Fatal(err)
	}
	m, jm, err := f.queue.Next(ctx, hubName, "dev2", "", c2d.Settings{}, 2*time.Second)
	if err != nil || m == nil {
		t.Fatalf("next: %v %v", m, err)
	}
	f.queue.Hold(m.LockToken, jm)
	if err := f.queue.Settle(m.LockToken, "complete"); err != nil {
		t.Fatal(err)
	}
	fb, err := f.service(t).NewReceiver(ctx, "/messages/servicebound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := feedbackRecords(t, ctx, fb)
	if len(recs) != 1 || recs[0].OriginalMessageID != "via-https" || recs[0].StatusCode != "Success" || recs[0].DeviceID != "dev2" {
		t.Fatalf("records %+v", recs)
	}
}

// TestC2DSendRefusals: an unknown device is rejected amqp:not-found, a bad
// `to` com.microsoft:argument-error, a body over 64 KB
// amqp:link:message-size-exceeded, the 51st queued message
// amqp:resource-limit-exceeded; the link keeps working.
func TestC2DSendRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 30*time.Second)
	snd, err := f.service(t).NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snd.Send(ctx, c2dMessage("/devices/nobody/messages/devicebound", "x", "", "x"), nil)
	if amqpCondition(err) != "amqp:not-found" || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown device: %v", err)
	}
	if err := snd.Send(ctx, c2dMessage("/devices/dev1/twin", "x", "", "x"), nil); amqpCondition(err) != "com.microsoft:argument-error" {
		t.Fatalf("bad to: %v", err)
	}
	big := c2dMessage("/devices/dev1/messages/devicebound", "big", "", strings.Repeat("x", 64<<10+1))
	if err := snd.Send(ctx, big, nil); amqpCondition(err) != "amqp:link:message-size-exceeded" {
		t.Fatalf("a message over 64 KB: %v", err)
	}
	for i := range c2d.MaxQueuedPerDevice {
		if err := snd.Send(ctx, c2dMessage("/devices/dev2/messages/devicebound", i, "", "x"), nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := snd.Send(ctx, c2dMessage("/devices/dev2/messages/devicebound", "51", "", "x"), nil); amqpCondition(err) != "amqp:resource-limit-exceeded" {
		t.Fatalf("51st: %v", err)
	}
	if err := snd.Send(ctx, c2dMessage("/devices/dev1/messages/devicebound", "after", "", "x"), nil); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
}

// TestDeviceTelemetryStored: a device's message is on the hub's stream
// with its system and application properties once it is accepted.
func TestDeviceTelemetryStored(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	snd, err := dev.NewSender(ctx, "/devices/dev1/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := &goamqp.Message{
		Properties: &goamqp.MessageProperties{MessageID: "tm-1", CorrelationID: "corr", To: str("/devices/dev1/messages/events"),
			ContentType: str("application/json"), ContentEncoding: str("utf-8")},
		Annotations:           goamqp.Annotations{"iothub-interface-id": "dtmi:example;1"},
		ApplicationProperties: map[string]any{"temperature": "21.5", "count": int64(3)},
		Data:                  [][]byte{[]byte(`{"t":21.5}`)},
	}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got *telemetry.Message
	_ = f.streams.Read(rctx, hubName, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
		got = &m
		cancel()
		return context.Canceled
	})
	if got == nil {
		t.Fatal("nothing stored")
	}
	sys := got.System
	if got.DeviceID != "dev1" || !bytes.Equal(got.Payload, []byte(`{"t":21.5}`)) || sys[telemetry.PropMessageID] != "tm-1" ||
		sys[telemetry.PropCorrelationID] != "corr" || sys[telemetry.PropContentType] != "application/json" ||
		sys[telemetry.PropContentEncoding] != "utf-8" || sys[telemetry.PropInterfaceID] != "dtmi:example;1" ||
		got.App["temperature"] != "21.5" || got.App["count"] != "3" || sys[telemetry.PropGenerationID] == "" {
		t.Fatalf("stored %+v", got)
	}
}

// TestTokenRefusals: a bad signature, an expired token, a token for
// another hub, a disabled device and a policy without ServiceConnect are
// refused (CBS 401, or the attach with amqp:unauthorized-access).
func TestTokenRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 30*time.Second)
	_, s := f.dial(t)
	hour := time.Now().Add(time.Hour)

	badSig := strings.Replace(f.serviceToken(t, "iothubowner", hour), "sig=", "sig=AAAA", 1)
	expired := f.serviceToken(t, "iothubowner", time.Now().Add(-10*time.Minute))
	otherHub := func() string {
		tok, _ := signFor("hub2.outpost.localhost", policyKey, "iothubowner", hour)
		return tok
	}()
	aud, devTok := f.deviceToken(t, "dev1", "", hour)
	wrongKeyDev := strings.Replace(devTok, "sig=", "sig=AAAA", 1)
	disabledAud, disabledTok := f.deviceToken(t, "disabled", "", hour)
	for _, c := range []struct{ name, aud, token string }{
		{"bad signature", hubHost, badSig},
		{"expired", hubHost, expired},
		{"token for another hub", hubHost, otherHub},
		{"audience of another hub", "hub2.outpost.localhost", f.serviceToken(t, "iothubowner", hour)},
		{"device token, wrong key", aud, wrongKeyDev},
		{"device token for another device's audience", "hub1.outpost.localhost%2Fdevices%2Fdev2", devTok},
		{"disabled device", disabledAud, disabledTok},
		{"not a token", hubHost, "garbage"},
		{"bearer token, bad signature", "https://iothubs.azure.net/.default", "Bearer e30.e30.bad"},
	} {
		if st := putToken(t, s, c.aud, c.token); st != 401 {
			t.Errorf("%s: status %d, want 401", c.name, st)
		}
	}
	// Nothing was granted: every attach is refused.
	if _, err := s.NewSender(ctx, "/messages/devicebound", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("service attach without a claim: %v", err)
	}
	if _, err := s.NewSender(ctx, "/devices/dev1/messages/events", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("device attach without a claim: %v", err)
	}
	// A valid token of a policy without ServiceConnect: accepted on $cbs,
	// refused at the attach.
	if st := putToken(t, s, hubHost, f.serviceToken(t, "reader", hour)); st != 200 {
		t.Fatalf("reader policy: %d", st)
	}
	_, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", nil)
	if amqpCondition(err) != "amqp:unauthorized-access" || !strings.Contains(err.Error(), "ServiceConnect") {
		t.Errorf("feedback with RegistryRead: %v", err)
	}
}

// TestDeviceOnlyOwnPaths: a device's connection may attach to its own
// paths only.
func TestDeviceOnlyOwnPaths(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	if _, err := dev.NewSender(ctx, "/devices/dev2/messages/events", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("another device's telemetry: %v", err)
	}
	if _, err := dev.NewReceiver(ctx, "/devices/dev2/messages/devicebound", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("another device's messages: %v", err)
	}
	if _, err := dev.NewSender(ctx, "/messages/devicebound", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("a device sending cloud-to-device: %v", err)
	}
	if _, err := dev.NewSender(ctx, "/devices/dev1/messages/events", nil); err != nil {
		t.Errorf("its own telemetry: %v", err)
	}
}

// TestDeviceClaimExpiryDetaches: the link a device token authorized ends
// with amqp:unauthorized-access when the token expires.
func TestDeviceClaimExpiryDetaches(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	_, s := f.dial(t)
	// Accepted until its expiry plus the tolerated skew: 2 s from now.
	aud, tok := f.deviceToken(t, "dev1", "", time.Now().Add(-sas.ClockSkew+2*time.Second))
	if st := putToken(t, s, aud, tok); st != 200 {
		t.Fatalf("put-token: %d", st)
	}
	snd, err := s.NewSender(ctx, "/devices/dev1/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	err = snd.Send(ctx, goamqp.NewMessage([]byte("late")), nil)
	if amqpCondition(err) != "amqp:unauthorized-access" {
		t.Fatalf("send after expiry: %v", err)
	}
}

// TestModuleMessagesAndBearer: a service with a bearer token whose
// principal may send cloud-to-device messages (and nothing else) sends to
// a module, which receives on its events path as the module SDK listens.
func TestModuleMessagesAndBearer(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	_, svc := f.dial(t)
	if st := putToken(t, svc, "https://iothubs.azure.net/.default", "Bearer "+jwt("sender", time.Now().Add(time.Hour))); st != 200 {
		t.Fatalf("bearer put-token: %d", st)
	}
	if _, err := svc.NewReceiver(ctx, "/messages/serviceBound/feedback", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("feedback without the data action: %v", err)
	}
	snd, err := svc.NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, c2dMessage("/devices/dev1/modules/mod1/messages/devicebound", "to-module", "", "hi module"), nil); err != nil {
		t.Fatal(err)
	}
	mod := f.device(t, "dev1", "mod1")
	rcv, err := mod.NewReceiver(ctx, "/devices/dev1/modules/mod1/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.GetData()) != "hi module" || *m.Properties.To != "/devices/dev1/modules/mod1/messages/devicebound" {
		t.Fatalf("module received %q to %v", m.GetData(), *m.Properties.To)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	// The module's token does not cover its device.
	if _, err := mod.NewReceiver(ctx, "/devices/dev1/messages/devicebound", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("module attaching to its device: %v", err)
	}
}

// TestFileNotifications: notifications arrive as JSON with the hub's
// content type; accepted completes, released abandons (delivered again),
// rejected drops.
func TestFileNotifications(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	f.files.queued <- fileupload.Notification{DeviceID: "dev1", BlobName: "dev1/a.txt", BlobSizeInBytes: 5, EnqueuedTimeUTC: time.Now().UTC()}
	f.files.queued <- fileupload.Notification{DeviceID: "dev1", BlobName: "dev1/b.txt", EnqueuedTimeUTC: time.Now().UTC()}
	rcv, err := f.service(t).NewReceiver(ctx, "/messages/serviceBound/filenotifications", &goamqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	next := func() (*goamqp.Message, fileupload.Notification) {
		t.Helper()
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var n fileupload.Notification
		if err := json.Unmarshal(m.GetData(), &n); err != nil || *m.Properties.ContentType != "application/vnd.microsoft.iothub.json" {
			t.Fatalf("notification %q (%v) content-type %v", m.GetData(), err, *m.Properties.ContentType)
		}
		return m, n
	}
	m, n := next()
	if n.BlobName != "dev1/a.txt" || n.BlobSizeInBytes != 5 {
		t.Fatalf("first %+v", n)
	}
	if err := rcv.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	m, n = next()
	if n.BlobName != "dev1/b.txt" {
		t.Fatalf("second %+v", n)
	}
	if err := rcv.RejectMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	m, n = next()
	if n.BlobName != "dev1/a.txt" {
		t.Fatalf("again %+v", n)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	want := []string{"dev1/a.txt=abandon", "dev1/b.txt=reject", "dev1/a.txt=complete"}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(f.files.settlements()) < len(want) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := f.files.settlements(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("settlements %v, want %v", got, want)
	}
}

// TestTwinOverAMQP: the device SDK's twin links — GET, PATCH reported
// (204 with the version), PUT to subscribe, then a desired property update
// arrives without a correlation-id.
func TestTwinOverAMQP(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	props := map[string]any{"com.microsoft:channel-correlation-id": "twin:abc", "com.microsoft:api-version": "2021-04-12"}
	snd, err := dev.NewSender(ctx, "/devices/dev1/twin", &goamqp.SenderOptions{Properties: props,
		SettlementMode: goamqp.SenderSettleModeSettled.Ptr(), RequestedReceiverSettleMode: goamqp.ReceiverSettleModeFirst.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := dev.NewReceiver(ctx, "/devices/dev1/twin", &goamqp.ReceiverOptions{Properties: props,
		RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr(), SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	request := func(op, resource, body string) (int32, map[string]any, *goamqp.Message) {
		t.Helper()
		corr := op + "-" + resource
		m := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: corr},
			Annotations: goamqp.Annotations{"operation": op}, Data: [][]byte{[]byte(body)}}
		if resource != "" {
			m.Annotations["resource"] = resource
		}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		resp, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Properties.CorrelationID != corr {
			t.Fatalf("%s: correlation id %v", op, resp.Properties.CorrelationID)
		}
		var doc map[string]any
		_ = json.Unmarshal(resp.GetData(), &doc)
		st, _ := resp.Annotations["status"].(int32)
		return st, doc, resp
	}
	st, doc, _ := request("GET", "", " ")
	if st != 200 || doc["desired"] == nil || doc["reported"] == nil {
		t.Fatalf("GET: %d %v", st, doc)
	}
	st, _, resp := request("PATCH", "/properties/reported", `{"firmware":"1.2"}`)
	if st != 204 || resp.Annotations["version"] == nil {
		t.Fatalf("PATCH: %d %v", st, resp.Annotations)
	}
	twin, err := f.reg.GetTwin(ctx, hubName, "dev1", "")
	if err != nil || twin.Properties.Reported["firmware"] != "1.2" {
		t.Fatalf("reported after PATCH: %+v %v", twin.Properties.Reported, err)
	}
	if st, _, _ := request("PUT", "/notifications/twin/properties/desired", " "); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	if st, _, _ := request("POST", "/nothing", " "); st != 400 {
		t.Fatalf("unknown operation: %d", st)
	}
	if _, err := f.reg.UpdateTwin(ctx, hubName, "dev1", "", registryPatch(`{"properties":{"desired":{"interval":30}}}`), "", false); err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var patch map[string]any
	if err := json.Unmarshal(m.GetData(), &patch); err != nil || patch["interval"] != 30.0 || patch["$version"] == nil ||
		(m.Properties != nil && m.Properties.CorrelationID != nil) {
		t.Fatalf("desired update %q %+v", m.GetData(), m.Properties)
	}
}

// TestMethodsOverAMQP: a direct method invoked through the device side's
// InvokeMethod (as the service API calls it) reaches a device listening on
// its AMQP methods links, and its response comes back.
func TestMethodsOverAMQP(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	rcv, err := dev.NewReceiver(ctx, "/devices/dev1/methods/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := dev.NewSender(ctx, "/devices/dev1/methods/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			return
		}
		_ = rcv.AcceptMessage(ctx, m)
		name, _ := m.ApplicationProperties["IoThub-methodname"].(string)
		resp := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: m.Properties.CorrelationID},
			ApplicationProperties: map[string]any{"IoThub-status": int32(201)},
			Data:                  [][]byte{[]byte(`{"ran":"` + name + `","got":` + string(m.GetData()) + `}`)}}
		_ = snd.Send(ctx, resp, nil)
	}()
	// Online as soon as the receiver's attach is answered: no retry.
	res, err := f.methods.InvokeMethod(ctx, hubName, "dev1", "", "reboot", json.RawMessage(`{"delay":1}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 || string(res.Payload) != `{"ran":"reboot","got":{"delay":1}}` {
		t.Fatalf("result %d %s", res.Status, res.Payload)
	}
	// A device without method links is not online.
	if _, err := f.methods.InvokeMethod(ctx, hubName, "dev2", "", "reboot", nil, time.Second); err == nil || !strings.Contains(err.Error(), "DeviceNotOnline") {
		t.Fatalf("device without method links: %v", err)
	}
}

// TestUnknownAddresses: addresses the hub does not serve are refused with
// amqp:not-found, the wrong role with amqp:not-allowed.
func TestUnknownAddresses(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	if _, err := dev.NewSender(ctx, "/nowhere", nil); amqpCondition(err) != "amqp:not-found" {
		t.Errorf("unknown address: %v", err)
	}
	if _, err := dev.NewReceiver(ctx, "/devices/dev1/messages/events", nil); amqpCondition(err) != "amqp:not-allowed" {
		t.Errorf("receiving on the events address: %v", err)
	}
	if _, err := dev.NewSender(ctx, "/messages/events", nil); amqpCondition(err) != "amqp:not-found" || !strings.Contains(err.Error(), "built-in endpoint") {
		t.Errorf("the built-in endpoint's address: %v", err)
	}
}

// TestSASLPlain: IoT Hub's SASL PLAIN users — {policy}@sas.root.{hub} and
// {deviceId}@sas.{hub} with a SAS token as the password — get the claims
// the token would get on $cbs; a wrong token fails the connection.
func TestSASLPlain(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t, 20*time.Second)
	dial := func(user, pass string) (*goamqp.Session, error) {
		c, err := goamqp.Dial(ctx, "amqp://"+f.addr, &goamqp.ConnOptions{HostName: hubHost, SASLType: goamqp.SASLTypePlain(user, pass)})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c.NewSession(ctx, nil)
	}
	svc, err := dial("iothubowner@sas.root."+hubName, f.serviceToken(t, "iothubowner", time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.NewSender(ctx, "/messages/devicebound", nil); err != nil {
		t.Errorf("service over PLAIN: %v", err)
	}
	_, tok := f.deviceToken(t, "dev1", "", time.Now().Add(time.Hour))
	dev, err := dial("dev1@sas."+hubName, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.NewSender(ctx, "/devices/dev1/messages/events", nil); err != nil {
		t.Errorf("device over PLAIN: %v", err)
	}
	if _, err := dev.NewSender(ctx, "/devices/dev2/messages/events", nil); amqpCondition(err) != "amqp:unauthorized-access" {
		t.Errorf("device over PLAIN, another device: %v", err)
	}
	if _, err := dial("dev2@sas."+hubName, tok); err == nil {
		t.Error("dev1's token accepted for dev2")
	}
}
