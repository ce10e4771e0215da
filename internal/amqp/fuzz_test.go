package amqp

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// fuzzConn is a connection whose peer sends exactly the fuzzer's bytes and
// then hangs up; what the server writes is dropped.
type fuzzConn struct {
	mu     sync.Mutex
	r      *bytes.Reader
	closed bool
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *fuzzConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5671} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// fuzzSession is a client's side of a connection: protocol headers, SASL,
// and the frames it sends.
func fuzzSession(tb testing.TB, sasl *wire.SASLInit, frames ...wire.Marshaler) []byte {
	tb.Helper()
	var b []byte
	if sasl != nil {
		b = append(b, wire.ProtocolHeader(wire.ProtoSASL)...)
		b, _ = wire.AppendFrame(b, wire.FrameSASL, 0, sasl, nil)
	}
	b = append(b, wire.ProtocolHeader(wire.ProtoAMQP)...)
	for _, f := range frames {
		var payload []byte
		if tr, ok := f.(*wire.Transfer); ok {
			payload = tr.Payload
		}
		var err error
		if b, err = wire.AppendFrame(b, wire.FrameAMQP, 0, f, payload); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// FuzzServeConn runs the connection engine — handshake, SASL, sessions,
// links, flow, transfers, $cbs and $management — over what a peer sends,
// then hangs up. No input makes it panic, and the connection always ends.
func FuzzServeConn(f *testing.F) {
	u := func(n uint32) *uint32 { return &n }
	message := func(m *wire.Message) []byte {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	putToken := message(&wire.Message{
		Properties: &wire.Properties{MessageID: "1", ReplyTo: "cbs"},
		ApplicationProperties: wire.Map{{Key: "operation", Value: "put-token"}, {Key: "type", Value: "servicebus.windows.net:sastoken"},
			{Key: "name", Value: "amqps://host/secret"}},
		Value: "good", HasValue: true,
	})
	open := &wire.Open{ContainerID: "fuzz", Hostname: "host", MaxFrameSize: 65536, IdleTimeout: 60000}
	begin := &wire.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}
	anonymous := &wire.SASLInit{Mechanism: "ANONYMOUS"}
	f.Add(fuzzSession(f, anonymous, open, begin,
		&wire.Attach{Name: "cbs-s", Handle: 0, Role: wire.RoleSender, Target: &wire.Target{Address: "$cbs"}, Source: &wire.Source{Address: "cbs"}},
		&wire.Attach{Name: "cbs-r", Handle: 1, Role: wire.RoleReceiver, Source: &wire.Source{Address: "$cbs"}, Target: &wire.Target{Address: "cbs"}},
		&wire.Flow{NextIncomingID: u(0), IncomingWindow: 100, OutgoingWindow: 100, Handle: u(1), DeliveryCount: u(0), LinkCredit: u(10)},
		&wire.Transfer{Handle: 0, DeliveryID: u(0), DeliveryTag: []byte{0}, MessageFormat: u(0), Payload: putToken},
		&wire.Attach{Name: "s", Handle: 2, Role: wire.RoleSender, Target: &wire.Target{Address: "secret"}, Source: &wire.Source{Address: "c"}},
		&wire.Transfer{Handle: 2, DeliveryID: u(1), DeliveryTag: []byte{1}, MessageFormat: u(0), Payload: message(&wire.Message{Data: [][]byte{[]byte("x")}})},
		&wire.Detach{Handle: 2, Closed: true}, &wire.End{}, &wire.Close{}))
	f.Add(fuzzSession(f, nil, open, begin,
		&wire.Attach{Name: "q-s", Handle: 0, Role: wire.RoleSender, Target: &wire.Target{Address: "q"}, Source: &wire.Source{Address: "c"}},
		&wire.Transfer{Handle: 0, DeliveryID: u(0), DeliveryTag: []byte{0}, MessageFormat: u(0), More: true, Payload: []byte{0x00, 0x53, 0x75}},
		&wire.Transfer{Handle: 0, Payload: []byte{0xa0, 0x01, 'x'}},
		&wire.Attach{Name: "q-r", Handle: 1, Role: wire.RoleReceiver, Source: &wire.Source{Address: "q"}, Target: &wire.Target{Address: "c"}},
		&wire.Flow{NextIncomingID: u(0), IncomingWindow: 100, OutgoingWindow: 100, Handle: u(1), DeliveryCount: u(0), LinkCredit: u(5), Drain: true},
		&wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: u(3), Settled: true, State: &wire.Accepted{}}))
	f.Add(fuzzSession(f, &wire.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00pass"), Hostname: "host"}, open, begin,
		&wire.Attach{Name: "m-s", Handle: 0, Role: wire.RoleSender, Target: &wire.Target{Address: "$management"}, Source: &wire.Source{Address: "m"}},
		&wire.Attach{Name: "m-r", Handle: 1, Role: wire.RoleReceiver, Source: &wire.Source{Address: "$management"}, Target: &wire.Target{Address: "m"}},
		&wire.Flow{NextIncomingID: u(0), IncomingWindow: 100, OutgoingWindow: 100, Handle: u(1), DeliveryCount: u(0), LinkCredit: u(1)},
		&wire.Transfer{Handle: 0, DeliveryID: u(0), DeliveryTag: []byte{0}, MessageFormat: u(0), Settled: true, Payload: message(&wire.Message{
			Properties: &wire.Properties{MessageID: uint64(7), ReplyTo: "m"}, ApplicationProperties: wire.Map{{Key: "operation", Value: "READ"}}})}))
	f.Add(append(wire.ProtocolHeader(wire.ProtoAMQP), 0, 0, 0, 16, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4))
	f.Add(wire.ProtocolHeader(wire.ProtoTLS))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &memHandler{arrived: make(chan struct{}, 1), ttl: time.Minute}
		srv := NewServer(Config{Handler: h, IdleTimeout: 10 * time.Second, HandshakeTimeout: 10 * time.Second, WriteBuffer: 64 << 10})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConnInfo(ctx, &fuzzConn{r: bytes.NewReader(data)}, ConnInfo{})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the connection is still served 10 s after the peer hung up")
		}
	})
}
