package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1/localhost and a client
// certificate for the X.509 device "devx509".
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

func getPKI(t testing.TB) testPKI {
	pkiOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "outpost mqtt test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, dns []string) tls.Certificate {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial),
				Subject:      pkix.Name{CommonName: cn},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(24 * time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature,
				ExtKeyUsage:  []x509.ExtKeyUsage{usage},
				IPAddresses:  ips,
				DNSNames:     dns,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
			if err != nil {
				panic(err)
			}
			return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		}
		pki.pool = x509.NewCertPool()
		pki.pool.AddCert(ca)
		pki.server = issue(2, "localhost", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
		pki.client = issue(3, "devx509", x509.ExtKeyUsageClientAuth, nil, nil)
	})
	return pki
}

func (p testPKI) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequestClientCert, // verified by the Authenticator, as IoT Hub does
		MinVersion:   tls.VersionTLS12,
	}
}

func (p testPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// event is one Handler call, for tests that check order.
type event struct {
	kind string // connected, disconnected, telemetry, twinget, twinreported, methodresponse
	id   Identity
	msg  Message
	rid  string
	code int
	body []byte
}

// fakeHandler records every call; func fields change behaviour per test.
type fakeHandler struct {
	telemetry    func(ctx context.Context, id Identity, msg Message) error
	twinGet      func(ctx context.Context, id Identity, rid string) TwinResponse
	twinReported func(ctx context.Context, id Identity, rid string, patch []byte) TwinResponse

	mu     sync.Mutex
	events []event
}

func (h *fakeHandler) record(e event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *fakeHandler) all(kind string) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event
	for _, e := range h.events {
		if kind == "" || e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *fakeHandler) Telemetry(ctx context.Context, id Identity, msg Message) error {
	if h.telemetry != nil {
		if err := h.telemetry(ctx, id, msg); err != nil {
			return err
		}
	}
	h.record(event{kind: "telemetry", id: id, msg: msg})
	return nil
}

func (h *fakeHandler) Connected(ctx context.Context, id Identity) {
	h.record(event{kind: "connected", id: id})
}

func (h *fakeHandler) Disconnected(ctx context.Context, id Identity) {
	h.record(event{kind: "disconnected", id: id})
}

func (h *fakeHandler) TwinGet(ctx context.Context, id Identity, rid string) TwinResponse {
	h.record(event{kind: "twinget", id: id, rid: rid})
	if h.twinGet != nil {
		return h.twinGet(ctx, id, rid)
	}
	return TwinResponse{Status: 200, Body: []byte(`{"desired":{"$version":1},"reported":{"$version":1}}`)}
}

func (h *fakeHandler) TwinReported(ctx context.Context, id Identity, rid string, patch []byte) TwinResponse {
	h.record(event{kind: "twinreported", id: id, rid: rid, body: patch})
	if h.twinReported != nil {
		return h.twinReported(ctx, id, rid, patch)
	}
	return TwinResponse{Status: 204, Version: 2}
}

func (h *fakeHandler) MethodResponse(ctx context.Context, id Identity, rid string, status int, payload []byte) {
	h.record(event{kind: "methodresponse", id: id, rid: rid, code: status, body: payload})
}

// testAuthenticate accepts the password "sas-{clientId}", or a client certificate whose CN is
// the device id. Device "disabled" is not authorized; device "unavailable" fails as a broken
// store would.
func testAuthenticate(ctx context.Context, info ConnectInfo) (Identity, error) {
	id := Identity{Hub: info.Host, DeviceID: info.DeviceID, ModuleID: info.ModuleID, AuthMethod: AuthSAS}
	switch {
	case info.DeviceID == "disabled":
		return Identity{}, fmt.Errorf("device disabled: %w", ErrNotAuthorized)
	case info.DeviceID == "unavailable":
		return Identity{}, errors.New("store unreachable")
	case len(info.PeerCertificates) > 0:
		if info.PeerCertificates[0].Subject.CommonName != info.DeviceID {
			return Identity{}, ErrNotAuthorized
		}
		id.AuthMethod = AuthX509CA
		return id, nil
	case info.Password == "sas-"+info.ClientID:
		return id, nil
	}
	return Identity{}, ErrBadCredentials
}

type fixture struct {
	t      testing.TB
	srv    *Server
	h      *fakeHandler
	hh     Handler // what the server gets; f.h unless an option replaces it
	addr   string
	pki    testPKI
	cfg    Config
	auth   Authenticator
	served chan error
}

// newTestServer starts a server on a TLS listener on 127.0.0.1. Options change the config,
// handler or authenticator before it starts.
func newTestServer(t testing.TB, opts ...func(*fixture)) *fixture {
	t.Helper()
	f := &fixture{
		t:    t,
		h:    &fakeHandler{},
		pki:  getPKI(t),
		cfg:  Config{ConnectTimeout: 5 * time.Second},
		auth: AuthenticatorFunc(testAuthenticate),
	}
	for _, o := range opts {
		o(f)
	}
	var logger *slog.Logger
	if os.Getenv("MQTT_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if f.hh == nil {
		f.hh = f.h
	}
	srv, err := New(f.cfg, f.auth, f.hh, logger)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ln, err := tls.Listen("tcp", "127.0.0.1:0", f.pki.serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.served = make(chan error, 1)
	go func() { f.served <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-f.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return f
}

const testHost = "myhub.azure-devices.net"

func username(clientID string) string {
	return testHost + "/" + clientID + "/?api-version=2021-04-12&DeviceClientType=outpost-test%2F1.0"
}

// clientOptions are what the Azure SDKs send: clean=false, MQTT 3.1.1, user name and SAS.
func (f *fixture) clientOptions(clientID string) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker("ssl://" + f.addr).
		SetClientID(clientID).
		SetUsername(username(clientID)).
		SetPassword("sas-" + clientID).
		SetTLSConfig(f.pki.clientTLS()).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
	return o
}

// connect connects a paho client and fails the test unless CONNACK accepts it.
func (f *fixture) connect(clientID string, opts ...func(*paho.ClientOptions)) (paho.Client, *lostWatch) {
	f.t.Helper()
	o := f.clientOptions(clientID)
	lost := &lostWatch{ch: make(chan error, 1)}
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost.ch <- err })
	for _, fn := range opts {
		fn(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		f.t.Fatalf("connect %s: %v", clientID, tok.Error())
	}
	f.t.Cleanup(func() { c.Disconnect(0) })
	return c, lost
}

// connectCode connects and returns the CONNACK return code.
func (f *fixture) connectCode(o *paho.ClientOptions) byte {
	f.t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		f.t.Fatal("no CONNACK")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return tok.(*paho.ConnectToken).ReturnCode()
}

type lostWatch struct{ ch chan error }

func (l *lostWatch) wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case err := <-l.ch:
		return err
	case <-time.After(within):
		t.Fatalf("connection not lost within %v", within)
		return nil
	}
}

func (l *lostWatch) none(t testing.TB, during time.Duration) {
	t.Helper()
	select {
	case err := <-l.ch:
		t.Fatalf("connection lost: %v", err)
	case <-time.After(during):
	}
}

// checkFor polls f until it returns nil or the time is up (nats-server style).
func checkFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	t.Fatalf("after %v: %v", total, err)
}

func publishOK(t testing.TB, c paho.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func subscribeOK(t testing.TB, c paho.Client, filter string, qos byte, h paho.MessageHandler) {
	t.Helper()
	tok := c.Subscribe(filter, qos, h)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code == 0x80 {
		t.Fatalf("subscribe %s refused", filter)
	}
}

// rawClient speaks MQTT by hand, for what a well-behaved client library will not do.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (f *fixture) dialRaw() *rawClient {
	f.t.Helper()
	nc, err := tls.Dial("tcp", f.addr, f.pki.clientTLS())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { nc.Close() })
	return &rawClient{t: f.t, nc: nc, br: bufio.NewReader(nc)}
}

func connectPacket(clientID string, keepalive uint16, will *packets.Packet) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: clientID,
			Keepalive:        keepalive,
			UsernameFlag:     true,
			Username:         []byte(username(clientID)),
			PasswordFlag:     true,
			Password:         []byte("sas-" + clientID),
		},
	}
	if will != nil {
		pk.Connect.WillFlag = true
		pk.Connect.WillTopic = will.TopicName
		pk.Connect.WillPayload = will.Payload
		pk.Connect.WillQos = will.FixedHeader.Qos
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one packet's type and body.
func (r *rawClient) read(timeout time.Duration) (byte, []byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(timeout))
	hb, err := r.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return 0, nil, err
	}
	return hb >> 4, body, nil
}

// connect sends CONNECT and expects CONNACK 0.
func (r *rawClient) connect(clientID string, keepalive uint16, will *packets.Packet) {
	r.t.Helper()
	r.write(connectPacket(clientID, keepalive, will))
	typ, body, err := r.read(5 * time.Second)
	if err != nil || typ != packets.Connack || len(body) != 2 || body[1] != 0 {
		r.t.Fatalf("CONNACK: type %d body %v err %v", typ, body, err)
	}
}

// waitClosed reads until the server closes the connection and returns how long that took.
func (r *rawClient) waitClosed(within time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	r.nc.SetReadDeadline(start.Add(within))
	_, err := io.Copy(io.Discard, r.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("connection still open after %v", within)
	}
	return time.Since(start)
}

func eventKinds(evs []event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.kind)
	}
	return b.String()
}
