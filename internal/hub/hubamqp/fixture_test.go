package hubamqp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/hubamqp"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

const (
	hubName   = "hub1"
	hubHost   = "hub1.outpost.localhost"
	policyKey = "cG9saWN5a2V5cG9saWN5a2V5cG9saWN5a2V5MTIzNA=="
	otherKey  = "b3RoZXJrZXlvdGhlcmtleW90aGVya2V5b3RoZXIxMjM="
)

// fixture is a hub ("hub1") in SQLite with devices, an embedded JetStream
// with the hub's c2d and telemetry streams, and the handler under test
// behind an AMQP server on a loopback port.
type fixture struct {
	addr      string
	reg       *registry.Service
	queue     *c2d.Queue
	streams   *telemetry.Streams
	files     *fakeFiles
	presence  *fakePresence
	methods   *devicemqtt.Hub
	keys      map[string]string // device → primary key
	sentNudge chan string
}

func newFixture(t *testing.T, opts ...func(*hubamqp.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/" + hubName
	body := `{"properties":{"hostName":"` + hubHost + `","authorizationPolicies":[` +
		`{"keyName":"iothubowner","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"RegistryWrite, ServiceConnect, DeviceConnect"},` +
		`{"keyName":"reader","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"RegistryRead"}]}}`
	if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: hubName, Body: []byte(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	hubs := hub.NewDirectory(st.Resources(), "outpost.localhost", "")
	f := &fixture{reg: registry.New(st.Devices(), nil, time.Now), keys: map[string]string{}, sentNudge: make(chan string, 100)}
	for i, dev := range []string{"dev1", "dev2", "disabled"} {
		key := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("device-key-%02d-0123456789abcdef", i)))
		in := registry.Identity{DeviceID: dev, Authentication: registry.Authentication{Type: "sas",
			SymmetricKey: &registry.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}}
		if dev == "disabled" {
			in.Status = "disabled"
		}
		if _, _, err := f.reg.PutIdentity(ctx, hubName, dev, "", in, ""); err != nil {
			t.Fatal(err)
		}
		f.keys[dev] = key
	}
	modKey := base64.StdEncoding.EncodeToString([]byte("module-key-0123456789abcdef0123"))
	if _, _, err := f.reg.PutIdentity(ctx, hubName, "dev1", "mod1", registry.Identity{DeviceID: "dev1", ModuleID: "mod1",
		Authentication: registry.Authentication{Type: "sas", SymmetricKey: &registry.SymmetricKey{PrimaryKey: modKey, SecondaryKey: modKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	f.keys["dev1/mod1"] = modKey

	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	f.queue = c2d.New(b, time.Now)
	f.streams = telemetry.New(b, time.Now)
	if err := f.queue.EnsureHub(ctx, hubName); err != nil {
		t.Fatal(err)
	}
	if err := f.streams.EnsureHub(ctx, hubName, 1); err != nil {
		t.Fatal(err)
	}
	f.files = &fakeFiles{queued: make(chan fileupload.Notification, 10)}
	f.presence = &fakePresence{}
	auth := deviceauth.New(hubs, f.reg, nil, time.Now)
	cfg := hubamqp.Config{
		Hubs: hubs, Registry: f.reg, Devices: auth, C2D: f.queue,
		Telemetry: publisher{f.streams}, Files: f.files, Presence: f.presence,
		Service: serviceapi.ServiceAuth{Bearer: fakeBearer{}, Authz: fakeAuthz{}},
		C2DSent: func(hub, deviceID, moduleID string) { f.sentNudge <- deviceID },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := hubamqp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.reg.OnTwinChange(h.DesiredChanged)
	// The device side without an MQTT server: methods go to AMQP devices.
	f.methods = devicemqtt.New(auth, f.reg, nil, devicemqtt.NewPresence(), slog.New(slog.DiscardHandler), time.Now)
	f.methods.AddMethodTransport(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	srv := amqp.NewServer(amqp.Config{Handler: h, IdleTimeout: 10 * time.Second})
	go srv.Serve(sctx, ln) //nolint:errcheck
	t.Cleanup(func() { cancel(); srv.Shutdown() })
	f.addr = ln.Addr().String()
	return f
}

// publisher stores telemetry as the app's publisher does (without its
// throttle), on the built-in endpoint.
type publisher struct{ streams *telemetry.Streams }

func (p publisher) StartTelemetry(id deviceauth.Identity, m telemetry.Message) (func(context.Context) error, error) {
	m.Hub, m.DeviceID, m.ModuleID = id.Hub.Name, id.DeviceID, id.ModuleID
	m.System[telemetry.PropGenerationID] = id.GenerationID
	return p.streams.PublishAsync(id.Hub.PartitionCount, telemetry.PathBuiltIn, m)
}

// fakeBearer accepts "jwt-for-{oid}" tokens (with an exp claim).
type fakeBearer struct{}

func (fakeBearer) ValidateIoTHubToken(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] != "sig" {
		return "", errors.New("the token's signature is not valid")
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		OID string `json:"oid"`
	}
	_ = json.Unmarshal(b, &c)
	return c.OID, nil
}

func jwt(oid string, exp time.Time) string {
	payload, _ := json.Marshal(map[string]any{"oid": oid, "exp": exp.Unix()})
	return "e30." + base64.RawURLEncoding.EncodeToString(payload) + ".sig"
}

// fakeAuthz lets the principal "sender" send cloud-to-device messages only.
type fakeAuthz struct{}

func (fakeAuthz) AuthorizeData(principalID, action, _ string) (bool, string) {
	if principalID == "sender" && action == serviceapi.C2DSend.DataAction {
		return true, ""
	}
	return false, "no role assignment grants it"
}

// fakeFiles is the file notification queue, in memory.
type fakeFiles struct {
	queued  chan fileupload.Notification
	mu      sync.Mutex
	held    map[string]fileupload.Notification
	settled []string
	n       int
}

func (f *fakeFiles) Receive(ctx context.Context, _ hub.Hub, wait time.Duration) (*fileupload.Notification, string, error) {
	select {
	case n := <-f.queued:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.n++
		token := fmt.Sprintf("lock-%d", f.n)
		if f.held == nil {
			f.held = map[string]fileupload.Notification{}
		}
		f.held[token] = n
		return &n, token, nil
	case <-time.After(wait):
		return nil, "", nil
	case <-ctx.Done():
		return nil, "", nil
	}
}

func (f *fakeFiles) Settle(_ context.Context, token string, how fileupload.Settlement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.held[token]
	if !ok {
		return fileupload.ErrLockLost
	}
	delete(f.held, token)
	f.settled = append(f.settled, n.BlobName+"="+[]string{"complete", "abandon", "reject"}[how])
	if how == fileupload.Abandon {
		n.DeliveryCount++
		f.queued <- n
	}
	return nil
}

func (f *fakeFiles) settlements() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.settled...)
}

// fakePresence records connects and disconnects.
type fakePresence struct {
	mu     sync.Mutex
	events []string
}

func (p *fakePresence) DeviceConnected(_ context.Context, hub, deviceID, moduleID string) {
	p.mu.Lock()
	p.events = append(p.events, "+"+deviceID)
	p.mu.Unlock()
}

func (p *fakePresence) DeviceDisconnected(_ context.Context, hub, deviceID, moduleID string) {
	p.mu.Lock()
	p.events = append(p.events, "-"+deviceID)
	p.mu.Unlock()
}

func (p *fakePresence) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.events...)
}

// dial connects as the Node IoT SDKs do: no SASL, the hub's host name in open.
func (f *fixture) dial(t *testing.T) (*goamqp.Conn, *goamqp.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqp://"+f.addr, &goamqp.ConnOptions{HostName: hubHost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// putToken puts a token on $cbs and returns the status code.
func putToken(t *testing.T, sess *goamqp.Session, audience, token string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	replyTo := "cbs-reply-" + fmt.Sprint(time.Now().UnixNano())
	rcv, err := sess.NewReceiver(ctx, "$cbs", &goamqp.ReceiverOptions{TargetAddress: replyTo,
		SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr(), RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	snd, err := sess.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	msg := &goamqp.Message{
		Properties:            &goamqp.MessageProperties{MessageID: replyTo, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience},
		Value:                 token,
	}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := resp.ApplicationProperties["status-code"].(int32)
	return status
}

func (f *fixture) serviceToken(t *testing.T, policy string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.Sign(hubHost, policyKey, policy, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// deviceToken signs as the device SDK does; the audience it is put for is
// the token's sr, URL-encoded.
func (f *fixture) deviceToken(t *testing.T, device, module string, expiry time.Time) (audience, token string) {
	t.Helper()
	resource := hubHost + "/devices/" + device
	key := f.keys[device]
	if module != "" {
		resource += "/modules/" + module
		key = f.keys[device+"/"+module]
	}
	tok, err := sas.Sign(resource, key, "", expiry)
	if err != nil {
		t.Fatal(err)
	}
	return sas.EncodeURIComponent(resource), tok
}

// service connects with the iothubowner policy.
func (f *fixture) service(t *testing.T) *goamqp.Session {
	t.Helper()
	_, s := f.dial(t)
	if st := putToken(t, s, hubHost, f.serviceToken(t, "iothubowner", time.Now().Add(time.Hour))); st != 200 {
		t.Fatalf("service put-token: %d", st)
	}
	return s
}

// device connects as a device (or module) with its key.
func (f *fixture) device(t *testing.T, device, module string) *goamqp.Session {
	t.Helper()
	_, s := f.dial(t)
	aud, tok := f.deviceToken(t, device, module, time.Now().Add(time.Hour))
	if st := putToken(t, s, aud, tok); st != 200 {
		t.Fatalf("device put-token: %d", st)
	}
	return s
}

func amqpCondition(err error) string {
	var ae *goamqp.Error
	if errors.As(err, &ae) {
		return string(ae.Condition)
	}
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return string(le.RemoteErr.Condition)
	}
	return ""
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func signFor(resource, key, policy string, expiry time.Time) (string, error) {
	return sas.Sign(resource, key, policy, expiry)
}

func registryPatch(doc string) registry.TwinPatch {
	var p registry.TwinPatch
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		panic(err)
	}
	return p
}
