package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestConnectReturnCodes(t *testing.T) {
	f := newTestServer(t)
	tests := []struct {
		name string
		opts func(o *paho.ClientOptions)
		want byte
	}{
		{"good SAS", func(o *paho.ClientOptions) {}, 0},
		{"bad password", func(o *paho.ClientOptions) { o.SetPassword("sas-other") }, 4},
		{"no password", func(o *paho.ClientOptions) { o.SetPassword("") }, 4},
		{"user name names another device", func(o *paho.ClientOptions) { o.SetUsername(username("dev2")) }, 4},
		{"user name without device", func(o *paho.ClientOptions) { o.SetUsername(testHost) }, 4},
		{"not authorized", func(o *paho.ClientOptions) {
			o.SetClientID("disabled").SetUsername(username("disabled")).SetPassword("sas-disabled")
		}, 5},
		{"authenticator failure", func(o *paho.ClientOptions) {
			o.SetClientID("unavailable").SetUsername(username("unavailable")).SetPassword("sas-unavailable")
		}, 3},
		{"client id with two slashes", func(o *paho.ClientOptions) {
			o.SetClientID("a/b/c").SetUsername(username("a/b/c")).SetPassword("sas-a/b/c")
		}, 2},
		{"module", func(o *paho.ClientOptions) {
			o.SetClientID("dev1/mod1").SetUsername(username("dev1/mod1")).SetPassword("sas-dev1/mod1")
		}, 0},
		{"old user name form", func(o *paho.ClientOptions) { o.SetUsername(testHost + "/dev1/api-version=2016-11-14") }, 0},
		{"bare user name form", func(o *paho.ClientOptions) { o.SetUsername(testHost + "/dev1") }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.clientOptions("dev1")
			tt.opts(o)
			if got := f.connectCode(o); got != tt.want {
				t.Errorf("CONNACK %d, want %d", got, tt.want)
			}
		})
	}
}

func TestConnectInfoAndX509(t *testing.T) {
	var seen atomic.Pointer[ConnectInfo]
	f := newTestServer(t, func(f *fixture) {
		f.auth = AuthenticatorFunc(func(ctx context.Context, info ConnectInfo) (Identity, error) {
			seen.Store(&info)
			return testAuthenticate(ctx, info)
		})
	})
	f.connect("devx509", func(o *paho.ClientOptions) {
		tc := f.pki.clientTLS()
		tc.Certificates = []tls.Certificate{f.pki.client}
		o.SetTLSConfig(tc).SetPassword("")
	})
	info := seen.Load()
	if len(info.PeerCertificates) != 1 || info.PeerCertificates[0].Subject.CommonName != "devx509" {
		t.Errorf("peer certificates %v", info.PeerCertificates)
	}
	if info.ServerName != "localhost" || info.Host != testHost || info.DeviceID != "devx509" || info.ModuleID != "" {
		t.Errorf("info %+v", info)
	}
	if got := info.Params.Get("api-version"); got != "2021-04-12" {
		t.Errorf("api-version %q", got)
	}
	if got := info.Params.Get("DeviceClientType"); got != "outpost-test/1.0" {
		t.Errorf("DeviceClientType %q", got)
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if c := f.h.all("connected"); len(c) != 1 || c[0].id.AuthMethod != AuthX509CA {
			return fmt.Errorf("connected events %+v", c)
		}
		return nil
	})

	// A certificate for another device is refused.
	o := f.clientOptions("devother")
	tc := f.pki.clientTLS()
	tc.Certificates = []tls.Certificate{f.pki.client}
	o.SetTLSConfig(tc).SetPassword("")
	if got := f.connectCode(o); got != 5 {
		t.Errorf("CONNACK %d, want 5", got)
	}
}

func TestProtocolLevel31Refused(t *testing.T) {
	f := newTestServer(t)
	o := f.clientOptions("dev1").SetProtocolVersion(3)
	if got := f.connectCode(o); got != 1 {
		t.Errorf("CONNACK %d, want 1", got)
	}
}

func TestQoS1AckedOnlyAfterTelemetryReturns(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := newTestServer(t, func(f *fixture) {
		f.h.telemetry = func(ctx context.Context, id Identity, msg Message) error {
			entered <- struct{}{}
			<-release
			return nil
		}
	})
	c, lost := f.connect("dev1")
	tok := c.Publish("devices/dev1/messages/events/", 1, false, []byte(`{"temp":21.5}`))
	<-entered
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK before Telemetry returned")
	}
	close(release)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after Telemetry returned: %v", tok.Error())
	}
	lost.none(t, 50*time.Millisecond)
}

func TestQoS1NotAckedWhenTelemetryFails(t *testing.T) {
	f := newTestServer(t, func(f *fixture) {
		f.h.telemetry = func(ctx context.Context, id Identity, msg Message) error {
			return errors.New("jetstream unavailable")
		}
	})
	c, lost := f.connect("dev1")
	tok := c.Publish("devices/dev1/messages/events/", 1, false, []byte("x"))
	lost.wait(t, 5*time.Second)
	if tok.WaitTimeout(500*time.Millisecond) && tok.Error() == nil {
		t.Fatal("publish acknowledged although Telemetry failed")
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if got := eventKinds(f.h.all("")); got != "connected,disconnected" {
			return fmt.Errorf("events %s", got)
		}
		return nil
	})
}

func TestTelemetryPropertyBag(t *testing.T) {
	f := newTestServer(t)
	c, _ := f.connect("dev1")
	// What the Node SDK sends: querystring.stringify for system properties, then
	// encodeURIComponent for application properties.
	topic := "devices/dev1/messages/events/%24.mid=mid-1&%24.ct=application%2Fjson&%24.ce=utf-8&my%20prop=v%261%3D2&flag"
	publishOK(t, c, topic, 1, []byte(`{"temp":21.5}`))
	tok := c.Publish("devices/dev1/messages/events/", 0, true, []byte("qos0"))
	tok.Wait()

	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := len(f.h.all("telemetry")); n != 2 {
			return fmt.Errorf("%d telemetry calls", n)
		}
		return nil
	})
	msgs := f.h.all("telemetry")
	want := map[string]string{"$.mid": "mid-1", "$.ct": "application/json", "$.ce": "utf-8", "my prop": "v&1=2", "flag": ""}
	if m := msgs[0].msg; !maps.Equal(m.Properties, want) || string(m.Payload) != `{"temp":21.5}` || m.Topic != topic || m.QoS != 1 {
		t.Errorf("message %+v", m)
	}
	if id := msgs[0].id; id.DeviceID != "dev1" || id.Hub != testHost {
		t.Errorf("identity %+v", id)
	}
	if m := msgs[1].msg; m.QoS != 0 || m.Properties[PropRetain] != "true" || string(m.Payload) != "qos0" {
		t.Errorf("retained QoS 0 message %+v", m)
	}
}

func TestTopicACL(t *testing.T) {
	f := newTestServer(t)
	other, otherLost := f.connect("dev2")

	for _, topic := range []string{
		"devices/dev2/messages/events/",     // another device's topic
		"devices/dev1/messages/devicebound", // a server-to-device topic
		"foo/bar",
		"$iothub/twin/PATCH/properties/desired/?$rid=1",
		"devices/dev1/messages/eventsX",
	} {
		t.Run(topic, func(t *testing.T) {
			c, lost := f.connect("dev1")
			c.Publish(topic, 1, false, []byte("nope"))
			lost.wait(t, 5*time.Second)
		})
	}
	for _, e := range f.h.all("telemetry") {
		t.Errorf("telemetry from a forbidden topic: %+v", e.msg)
	}
	otherLost.none(t, 50*time.Millisecond)
	publishOK(t, other, "devices/dev2/messages/events/", 1, []byte("still fine"))

	// Subscriptions outside the topic space are refused with 0x80 without a disconnect.
	c, lost := f.connect("dev1")
	tok := c.SubscribeMultiple(map[string]byte{
		"devices/dev2/messages/devicebound/#": 1,
		"#":                                   0,
		"devices/dev1/messages/devicebound/#": 2,
		"$iothub/twin/res/#":                  0,
	}, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got := tok.(*paho.SubscribeToken).Result()
	want := map[string]byte{
		"devices/dev2/messages/devicebound/#": 0x80,
		"#":                                   0x80,
		"devices/dev1/messages/devicebound/#": 1, // QoS 2 is granted as 1
		"$iothub/twin/res/#":                  0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("SUBACK %v, want %v", got, want)
	}
	lost.none(t, 50*time.Millisecond)
}

func TestModuleTopics(t *testing.T) {
	f := newTestServer(t)
	c, lost := f.connect("dev1/mod1")
	publishOK(t, c, "devices/dev1/modules/mod1/messages/events/%24.on=out1", 1, []byte("m"))
	subscribeOK(t, c, "devices/dev1/modules/mod1/inputs/#", 1, nil)
	subscribeOK(t, c, "$iothub/methods/POST/#", 0, nil)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		ms := f.h.all("telemetry")
		if len(ms) != 1 || ms[0].id.ModuleID != "mod1" || ms[0].msg.Properties[PropOutputName] != "out1" {
			return fmt.Errorf("telemetry %+v", ms)
		}
		return nil
	})
	err := f.srv.Deliver(context.Background(), DeviceKey{Hub: testHost, DeviceID: "dev1", ModuleID: "mod1"},
		Delivery{Kind: DeliverC2D, Payload: []byte("x")})
	if !errors.Is(err, ErrInvalidDelivery) {
		t.Errorf("C2D to a module: %v", err)
	}
	c.Publish("devices/dev1/messages/events/", 1, false, []byte("as the device"))
	lost.wait(t, 5*time.Second)
}

func TestC2D(t *testing.T) {
	f := newTestServer(t)
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	ctx := context.Background()
	if err := f.srv.Deliver(ctx, key, Delivery{Kind: DeliverC2D}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Deliver to an absent device: %v", err)
	}
	c, _ := f.connect("dev1")
	if err := f.srv.Deliver(ctx, key, Delivery{Kind: DeliverC2D}); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Deliver before SUBSCRIBE: %v", err)
	}
	got := make(chan paho.Message, 1)
	subscribeOK(t, c, "devices/dev1/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m })

	acked := make(chan error, 1)
	err := f.srv.Deliver(ctx, key, Delivery{
		Kind:    DeliverC2D,
		Payload: []byte("hello"),
		Properties: map[string]string{
			PropMessageID: "c2d-1",
			PropTo:        "/devices/dev1/messages/deviceBound",
			"app prop":    "a&b=c",
		},
		Acked: func(err error) { acked <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	var m paho.Message
	select {
	case m = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no C2D message")
	}
	wantTopic := "devices/dev1/messages/devicebound/%24.mid=c2d-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&app%20prop=a%26b%3Dc"
	if m.Topic() != wantTopic || m.Qos() != 1 || string(m.Payload()) != "hello" {
		t.Errorf("got %s qos %d %q", m.Topic(), m.Qos(), m.Payload())
	}
	// The Node SDK splits the topic on "/" and decodes the fifth segment.
	bag, err := ParsePropertyBag(strings.Split(m.Topic(), "/")[4])
	if err != nil || bag[PropTo] != "/devices/dev1/messages/deviceBound" || bag["app prop"] != "a&b=c" {
		t.Errorf("bag %v %v", bag, err)
	}
	select {
	case err := <-acked:
		if err != nil {
			t.Errorf("Acked(%v)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no PUBACK callback")
	}
}

func TestC2DUnackedFailsOnDisconnect(t *testing.T) {
	f := newTestServer(t)
	got := make(chan struct{}, 1)
	c, _ := f.connect("dev1", func(o *paho.ClientOptions) { o.SetAutoAckDisabled(true) })
	subscribeOK(t, c, "devices/dev1/messages/devicebound/#", 1, func(paho.Client, paho.Message) { got <- struct{}{} })
	acked := make(chan error, 1)
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverC2D, Payload: []byte("x"), Acked: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	<-got
	c.Disconnect(0)
	select {
	case err := <-acked:
		if !errors.Is(err, ErrConnectionClosed) {
			t.Errorf("Acked(%v), want ErrConnectionClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Acked not called")
	}
}

func TestTwin(t *testing.T) {
	f := newTestServer(t, func(f *fixture) {
		f.h.twinReported = func(ctx context.Context, id Identity, rid string, patch []byte) TwinResponse {
			if !bytes.Equal(patch, []byte(`{"battery":55}`)) {
				return TwinResponse{Status: 400, Body: []byte(`{"errorCode":400004,"message":"bad patch"}`)}
			}
			return TwinResponse{Status: 204, Version: 7}
		}
	})
	c, _ := f.connect("dev1")
	res := make(chan paho.Message, 4)
	subscribeOK(t, c, "$iothub/twin/res/#", 0, func(_ paho.Client, m paho.Message) { res <- m })
	recv := func() paho.Message {
		t.Helper()
		select {
		case m := <-res:
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no twin response")
			return nil
		}
	}

	// GET as the Node SDK sends it: QoS 0, a one-space body.
	publishOK(t, c, "$iothub/twin/GET/?$rid=6f0c5a2e-1", 0, []byte(" "))
	m := recv()
	if m.Topic() != "$iothub/twin/res/200/?$rid=6f0c5a2e-1" || !strings.Contains(string(m.Payload()), `"desired"`) {
		t.Errorf("GET response %s %s", m.Topic(), m.Payload())
	}

	publishOK(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=2", 1, []byte(`{"battery":55}`))
	if m := recv(); m.Topic() != "$iothub/twin/res/204/?$rid=2&$version=7" || len(m.Payload()) != 0 {
		t.Errorf("PATCH response %s %q", m.Topic(), m.Payload())
	}
	publishOK(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=3", 0, []byte(`{`))
	if m := recv(); m.Topic() != "$iothub/twin/res/400/?$rid=3" || !strings.Contains(string(m.Payload()), "errorCode") {
		t.Errorf("PATCH error response %s %q", m.Topic(), m.Payload())
	}
	if ev := f.h.all("twinreported"); len(ev) != 2 || ev[0].rid != "2" || string(ev[0].body) != `{"battery":55}` {
		t.Errorf("TwinReported calls %+v", ev)
	}

	// Desired-properties notifications.
	desired := make(chan paho.Message, 1)
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverDesiredPatch, Version: 9}); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("desired patch before SUBSCRIBE: %v", err)
	}
	subscribeOK(t, c, "$iothub/twin/PATCH/properties/desired/#", 0, func(_ paho.Client, m paho.Message) { desired <- m })
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverDesiredPatch, Version: 9, Payload: []byte(`{"fw":"2.0","$version":9}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-desired:
		if m.Topic() != "$iothub/twin/PATCH/properties/desired/?$version=9" || string(m.Payload()) != `{"fw":"2.0","$version":9}` {
			t.Errorf("desired %s %s", m.Topic(), m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no desired patch")
	}
}

func TestDirectMethod(t *testing.T) {
	f := newTestServer(t)
	c, _ := f.connect("dev1")
	subscribeOK(t, c, "$iothub/methods/POST/#", 0, func(c paho.Client, m paho.Message) {
		// A device answers on $iothub/methods/res/{status}/?$rid={rid}.
		if m.Topic() != "$iothub/methods/POST/reboot/?$rid=r1" {
			t.Errorf("method request topic %s", m.Topic())
			return
		}
		c.Publish("$iothub/methods/res/200/?$rid=r1", 0, false, []byte(`{"ok":true}`))
	})
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverMethodRequest, MethodName: "reboot", RequestID: "r1", Payload: []byte(`{"delay":0}`)}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		ev := f.h.all("methodresponse")
		if len(ev) != 1 || ev[0].rid != "r1" || ev[0].code != 200 || string(ev[0].body) != `{"ok":true}` {
			return fmt.Errorf("method responses %+v", ev)
		}
		return nil
	})
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverMethodRequest, MethodName: "a/b", RequestID: "r2"}); !errors.Is(err, ErrInvalidDelivery) {
		t.Errorf("bad method name: %v", err)
	}
}

func TestTakeover(t *testing.T) {
	f := newTestServer(t)
	_, firstLost := f.connect("dev1")
	second, secondLost := f.connect("dev1")
	firstLost.wait(t, 5*time.Second)
	publishOK(t, second, "devices/dev1/messages/events/", 1, []byte("from the second"))
	secondLost.none(t, 50*time.Millisecond)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if got := eventKinds(f.h.all("")); got != "connected,disconnected,connected,telemetry" {
			return fmt.Errorf("events %s", got)
		}
		return nil
	})
	if !f.srv.IsConnected(DeviceKey{Hub: testHost, DeviceID: "dev1"}) {
		t.Error("device not connected after takeover")
	}
}

func TestPersistentSession(t *testing.T) {
	f := newTestServer(t)
	key := DeviceKey{Hub: testHost, DeviceID: "dev1"}
	c, _ := f.connect("dev1")
	subscribeOK(t, c, "devices/dev1/messages/devicebound/#", 1, nil)
	c.Disconnect(100)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if f.srv.IsConnected(key) {
			return errors.New("still connected")
		}
		return nil
	})

	// Reconnecting with clean=false finds the session and its subscription.
	got := make(chan paho.Message, 1)
	o := f.clientOptions("dev1").SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m })
	c2 := paho.NewClient(o)
	tok := c2.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatalf("reconnect: %v, session present %v", tok.Error(), tok.(*paho.ConnectToken).SessionPresent())
	}
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverC2D, Payload: []byte("queued")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "queued" {
			t.Errorf("payload %q", m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no C2D on the restored subscription")
	}
	c2.Disconnect(100)

	// clean=true discards it.
	c3, _ := f.connect("dev1", func(o *paho.ClientOptions) { o.SetCleanSession(true) })
	_ = c3
	if err := f.srv.Deliver(context.Background(), key, Delivery{Kind: DeliverC2D, Payload: []byte("x")}); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("Deliver after a clean session: %v", err)
	}
}

func TestKeepAliveTimeout(t *testing.T) {
	f := newTestServer(t)
	r := f.dialRaw()
	r.connect("dev1", 1, nil)
	took := r.waitClosed(5 * time.Second)
	if took < 1200*time.Millisecond || took > 3*time.Second {
		t.Errorf("closed after %v, want about 1.5 s", took)
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if got := eventKinds(f.h.all("")); got != "connected,disconnected" {
			return fmt.Errorf("events %s", got)
		}
		return nil
	})
}

func TestKeepAlivePingsKeepConnectionOpen(t *testing.T) {
	f := newTestServer(t)
	r := f.dialRaw()
	r.connect("dev1", 1, nil)
	for range 4 {
		time.Sleep(500 * time.Millisecond)
		r.write([]byte{packets.Pingreq << 4, 0})
		typ, _, err := r.read(2 * time.Second)
		if err != nil || typ != packets.Pingresp {
			t.Fatalf("PINGRESP: %d %v", typ, err)
		}
	}
}

func TestOversizePublishRefused(t *testing.T) {
	f := newTestServer(t)
	c, lost := f.connect("dev1")
	publishOK(t, c, "devices/dev1/messages/events/", 1, bytes.Repeat([]byte("a"), 256<<10)) // the limit itself
	for _, size := range []int{300 << 10, 256<<10 + 1} {
		c.Publish("devices/dev1/messages/events/", 1, false, bytes.Repeat([]byte("b"), size))
		lost.wait(t, 5*time.Second)
		c, lost = f.connect("dev1")
	}
	time.Sleep(50 * time.Millisecond)
	if ms := f.h.all("telemetry"); len(ms) != 1 || len(ms[0].msg.Payload) != 256<<10 {
		t.Errorf("%d telemetry calls", len(ms))
	}
}

func TestMalformedPacketClosesOnlyThatConnection(t *testing.T) {
	f := newTestServer(t)
	good, goodLost := f.connect("dev2")
	for name, garbage := range map[string][]byte{
		"five-byte remaining length": {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"topic longer than packet":   {0x30, 0x04, 0x00, 0x10, 'a', 'b'},
		"reserved packet type":       {0x00, 0x00},
		"second CONNECT":             connectPacket("dev1", 30, nil),
		"QoS 3":                      {0x36, 0x02, 0x00, 0x00},
		"PINGREQ with a body":        {0xc0, 0x01, 0x00},
		"SUBSCRIBE without filters":  {0x82, 0x02, 0x00, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			r := f.dialRaw()
			r.connect("dev1", 30, nil)
			r.write(garbage)
			r.waitClosed(5 * time.Second)
		})
	}
	goodLost.none(t, 50*time.Millisecond)
	publishOK(t, good, "devices/dev2/messages/events/", 1, []byte("unaffected"))
}

func TestConnectFloodBoundedByTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	f := newTestServer(t, func(f *fixture) { f.cfg.ConnectTimeout = timeout })
	const flood = 100
	idle := make([]net.Conn, 0, flood)
	for range flood / 2 {
		// Half never start TLS, half finish TLS but never send CONNECT.
		nc, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
		tc, err := tls.Dial("tcp", f.addr, f.pki.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, tc)
	}
	start := time.Now()
	c, _ := f.connect("dev1")
	publishOK(t, c, "devices/dev1/messages/events/", 1, []byte("through the flood"))
	if d := time.Since(start); d > timeout {
		t.Errorf("a real device took %v to connect and publish during the flood", d)
	}
	for _, nc := range idle {
		nc.SetReadDeadline(time.Now().Add(3 * timeout))
		buf := make([]byte, 64)
		for {
			_, err := nc.Read(buf)
			if err == nil {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("idle connection still open after %v", time.Since(start))
			}
			break
		}
		nc.Close()
	}
}

func TestSASExpiryClosesConnection(t *testing.T) {
	f := newTestServer(t, func(f *fixture) {
		f.auth = AuthenticatorFunc(func(ctx context.Context, info ConnectInfo) (Identity, error) {
			id, err := testAuthenticate(ctx, info)
			id.ExpiresAt = time.Now().Add(700 * time.Millisecond)
			return id, err
		})
	})
	start := time.Now()
	_, lost := f.connect("dev1")
	lost.wait(t, 5*time.Second)
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("closed after %v, before the token expired", d)
	}
}

func TestWillMessage(t *testing.T) {
	f := newTestServer(t)
	will := &packets.Packet{TopicName: "devices/dev1/messages/events/%24.ct=text%2Fplain", Payload: []byte("gone"),
		FixedHeader: packets.FixedHeader{Qos: 1}}

	// Closed without DISCONNECT: the Will is sent as telemetry.
	r := f.dialRaw()
	r.connect("dev1", 30, will)
	r.nc.Close()
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		ms := f.h.all("telemetry")
		if len(ms) != 1 || string(ms[0].msg.Payload) != "gone" || ms[0].msg.Properties[PropMessageType] != "Will" ||
			ms[0].msg.Properties[PropContentType] != "text/plain" {
			return fmt.Errorf("telemetry %+v", ms)
		}
		return nil
	})

	// DISCONNECT first: no Will.
	r = f.dialRaw()
	r.connect("dev1", 30, will)
	r.write([]byte{packets.Disconnect << 4, 0})
	r.waitClosed(5 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if n := len(f.h.all("telemetry")); n != 1 {
		t.Errorf("%d telemetry calls, want 1", n)
	}

	// A Will on another device's topic is refused at CONNECT.
	r = f.dialRaw()
	r.write(connectPacket("dev1", 30, &packets.Packet{TopicName: "devices/dev2/messages/events/", Payload: []byte("x")}))
	typ, body, err := r.read(5 * time.Second)
	if err != nil || typ != packets.Connack || body[1] != 5 {
		t.Errorf("CONNACK %d %v %v", typ, body, err)
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := newTestServer(t, func(f *fixture) {
		f.h.telemetry = func(ctx context.Context, id Identity, msg Message) error {
			entered <- struct{}{}
			<-release
			return nil
		}
	})
	c, lost := f.connect("dev1")
	tok := c.Publish("devices/dev1/messages/events/", 1, false, []byte("in flight"))
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- f.srv.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("message received before Shutdown was not acknowledged: %v", tok.Error())
	}
	lost.wait(t, 5*time.Second)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-f.served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	f.served <- ErrServerClosed // for the cleanup
	if _, err := tls.Dial("tcp", f.addr, f.pki.clientTLS()); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	f := newTestServer(t, func(f *fixture) {
		f.h.telemetry = func(ctx context.Context, id Identity, msg Message) error {
			<-ctx.Done() // a handler that honours its context, and nothing else
			return ctx.Err()
		}
	})
	c, lost := f.connect("dev1")
	c.Publish("devices/dev1/messages/events/", 1, false, []byte("stuck"))
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := f.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v", err)
	}
	lost.wait(t, 5*time.Second)
}

func TestConfigValidate(t *testing.T) {
	err := Config{ConnectTimeout: -1, MaxPacketSize: -1, MaxInflight: 70000}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("Validate reported %v, want three problems", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}
