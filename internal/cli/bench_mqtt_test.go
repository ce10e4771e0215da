package cli

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
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestLatencyHistogramQuantiles(t *testing.T) {
	h := newLatencyHistogram()
	for v := 1; v <= 100000; v++ {
		h.record(time.Duration(v) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := time.Duration(q*100000) * time.Microsecond
		got := h.quantile(q)
		if got < want || float64(got-want) > float64(want)/64 {
			t.Errorf("quantile(%g) = %s, want %s within 1/64 above", q, got, want)
		}
	}
	if h.max != 100*time.Millisecond || h.quantile(1) != h.max {
		t.Errorf("max %s, quantile(1) %s; want 100ms", h.max, h.quantile(1))
	}
	other := newLatencyHistogram()
	other.record(time.Second)
	h.merge(other)
	if h.total != 100001 || h.max != time.Second {
		t.Errorf("after merge: total %d max %s", h.total, h.max)
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1 << 46} {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d is %d, below the previous value's %d", v, i, prev)
		}
		prev = i
		if up := histUpper(i); up < v || float64(up-v) > float64(v)/64+1 {
			t.Errorf("value %d in bucket %d whose upper edge is %d", v, i, up)
		}
	}
	if i := histIndex(^uint64(0)); i >= len(newLatencyHistogram().counts) {
		t.Errorf("huge value index %d out of range", i)
	}
}

func TestEncodingDecodesAsMQTT311(t *testing.T) {
	connect := encodeConnect("dev-1", "hub.example/dev-1/?api-version=2021-04-12", "SharedAccessSignature sr=x", 4*time.Minute)
	pk := decodeTestPacket(t, connect)
	if pk.FixedHeader.Type != packets.Connect || pk.Connect.ClientIdentifier != "dev-1" || !pk.Connect.Clean ||
		string(pk.Connect.Username) != "hub.example/dev-1/?api-version=2021-04-12" || string(pk.Connect.Password) != "SharedAccessSignature sr=x" ||
		pk.Connect.Keepalive != 240 || pk.ProtocolVersion != 4 {
		t.Errorf("CONNECT decoded as %+v", pk.Connect)
	}
	anon := decodeTestPacket(t, encodeConnect("dev-2", "", "", time.Minute))
	if anon.Connect.UsernameFlag || anon.Connect.PasswordFlag {
		t.Errorf("anonymous CONNECT has credentials flags: %+v", anon.Connect)
	}
	for _, size := range []int{0, 10, 200, 20000} {
		payload := bytes.Repeat([]byte{'x'}, size)
		msg := append(encodePublishPrefix("devices/d/messages/events/", 1, size), 0x12, 0x34)
		msg = append(msg, payload...)
		pub := decodeTestPacket(t, msg)
		if pub.TopicName != "devices/d/messages/events/" || pub.FixedHeader.Qos != 1 || pub.PacketID != 0x1234 || len(pub.Payload) != size {
			t.Errorf("size %d: PUBLISH decoded as topic %q qos %d id %#x payload %d", size, pub.TopicName, pub.FixedHeader.Qos, pub.PacketID, len(pub.Payload))
		}
		q0 := decodeTestPacket(t, append(encodePublishPrefix("t", 0, size), payload...))
		if q0.FixedHeader.Qos != 0 || len(q0.Payload) != size {
			t.Errorf("size %d: QoS 0 PUBLISH decoded with qos %d payload %d", size, q0.FixedHeader.Qos, len(q0.Payload))
		}
	}
}

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	o := mqttBenchOptions{target: "rabbit", devices: 0, qos: 2, inflight: 0, size: -1, keepAlive: 0, connectConcurrency: 0}
	err := o.validate()
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n < 7 {
		t.Errorf("%d problems reported, want every one: %v", n, err)
	}
}

// TestPublishAgainstABroker runs the client against a minimal TLS broker
// that acknowledges every QoS 1 PUBLISH and checks what arrived.
func TestPublishAgainstABroker(t *testing.T) {
	b := startTestBroker(t)
	o := mqttBenchOptions{target: "mosquitto", broker: b.addr.String(), devices: 5, messages: 200, qos: 1, inflight: 8, size: 64,
		keepAlive: time.Minute, connectConcurrency: 2, drain: 5 * time.Second, devicePrefix: "t-"}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	ids := benchDeviceIDs(o.devicePrefix, o.devices)
	target := benchTarget{addr: b.addr, tls: &tls.Config{RootCAs: b.pool, ServerName: "127.0.0.1"}}
	for _, id := range ids {
		target.devices = append(target.devices, benchDevice{id: id})
	}
	conns, cs := connectAll(context.Background(), target, o, sourceAddresses(b.addr.IP))
	if cs.ok != o.devices || cs.failed != 0 {
		t.Fatalf("connected %d, failed %d: %v", cs.ok, cs.failed, cs.firstErr)
	}
	res := publishAll(context.Background(), conns, o)
	closeAll(conns)
	for _, c := range conns {
		res.hist.merge(c.hist)
	}
	want := int64(o.devices * o.messages)
	if res.sent != want || res.acked != want || res.hist.total != uint64(want) || res.dropped != 0 {
		t.Errorf("sent %d acked %d recorded %d dropped %d, want %d each and none dropped", res.sent, res.acked, res.hist.total, res.dropped, want)
	}
	if got := b.received.Load(); got != want {
		t.Errorf("broker received %d, want %d", got, want)
	}
	if b.badTopic.Load() != 0 {
		t.Errorf("%d messages on a topic other than devices/{id}/messages/events/", b.badTopic.Load())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.sources) < 2 {
		t.Errorf("connections came from %v; want them spread over several loopback addresses", b.sources)
	}
}

func decodeTestPacket(t *testing.T, b []byte) packets.Packet {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	pk, err := readTestPacket(r)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func readTestPacket(r *bufio.Reader) (packets.Packet, error) {
	var pk packets.Packet
	hb, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, err := readRemainingLength(r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 4
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Pingreq, packets.Disconnect:
	default:
		err = errors.New("unexpected packet type")
	}
	return pk, err
}

type testBroker struct {
	addr     *net.TCPAddr
	pool     *x509.CertPool
	received atomic.Int64
	badTopic atomic.Int64
	mu       sync.Mutex
	sources  map[string]bool
}

func startTestBroker(t *testing.T) *testBroker {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	b := &testBroker{pool: x509.NewCertPool(), sources: map[string]bool{}}
	b.pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().(*net.TCPAddr)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.sources[nc.RemoteAddr().(*net.TCPAddr).IP.String()] = true
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				b.serve(nc)
			}()
		}
	}()
	return b
}

func (b *testBroker) serve(nc net.Conn) {
	r := bufio.NewReader(nc)
	var clientID string
	for {
		pk, err := readTestPacket(r)
		if err != nil {
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Connect:
			clientID = pk.Connect.ClientIdentifier
			nc.Write([]byte{0x20, 2, 0, 0})
		case packets.Publish:
			b.received.Add(1)
			if pk.TopicName != "devices/"+clientID+"/messages/events/" {
				b.badTopic.Add(1)
			}
			if pk.FixedHeader.Qos == 1 {
				nc.Write([]byte{0x40, 2, byte(pk.PacketID >> 8), byte(pk.PacketID)})
			}
		case packets.Pingreq:
			nc.Write([]byte{0xD0, 0})
		case packets.Disconnect:
			return
		}
	}
}
