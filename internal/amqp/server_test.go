package amqp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// memHandler is a tiny broker for the engine tests: "q" is a queue (send
// and receive), "$management" echoes, "secret" needs a claim.
type memHandler struct {
	mu      sync.Mutex
	queue   [][]byte
	arrived chan struct{}
	ttl     time.Duration
}

func (h *memHandler) Open(ctx context.Context, c *Conn) error { return nil }

func (h *memHandler) PutToken(ctx context.Context, c *Conn, t TokenRequest) (Claim, error) {
	if t.Token != "good" {
		return Claim{}, &RPCError{Status: 401, Description: "bad token"}
	}
	return Claim{Audience: t.Audience, Expires: time.Now().Add(h.ttl)}, nil
}

func (h *memHandler) Attach(ctx context.Context, c *Conn, a *wire.Attach) (Link, error) {
	addr := attachAddress(a)
	switch {
	case addr == "secret":
		if _, ok := c.ClaimFor("amqps://host/secret"); !ok {
			return nil, wire.Errorf("amqp:unauthorized-access", "no claim for secret")
		}
		return &Inbound{Claim: "host/secret", Receive: func(d *Delivery) { d.Accept() }}, nil
	case addr == "$management" && a.Role == wire.RoleSender:
		return &RPC{Serve: func(ctx context.Context, req *wire.Message) *wire.Message {
			return Response(200, "OK", req.ApplicationProperties.String("operation"))
		}}, nil
	case addr == "$management":
		return ReplyLink(), nil
	case addr == "q" && a.Role == wire.RoleSender:
		return &Inbound{Receive: func(d *Delivery) {
			h.mu.Lock()
			h.queue = append(h.queue, d.Raw)
			h.mu.Unlock()
			select {
			case h.arrived <- struct{}{}:
			default:
			}
			d.Accept()
		}}, nil
	case addr == "q":
		return &Outbound{Run: func(ctx context.Context, s *Sender) error {
			for {
				_, drain, err := s.Wait(ctx)
				if err != nil {
					return nil
				}
				h.mu.Lock()
				var next []byte
				if len(h.queue) > 0 {
					next, h.queue = h.queue[0], h.queue[1:]
				}
				h.mu.Unlock()
				if next == nil {
					if drain {
						s.Drained()
						continue
					}
					select {
					case <-h.arrived:
					case <-time.After(20 * time.Millisecond):
					case <-ctx.Done():
						return nil
					}
					continue
				}
				if err := s.Send(ctx, next, SendOptions{}); err != nil {
					return nil
				}
			}
		}}, nil
	}
	return nil, wire.Errorf("amqp:not-found", "no entity %q", addr)
}

func startServer(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := NewServer(Config{Handler: h, IdleTimeout: 10 * time.Second})
	go srv.Serve(ctx, ln) //nolint:errcheck
	t.Cleanup(func() { cancel(); srv.Shutdown() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *goamqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), HostName: "host"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSendReceiveSettleModes(t *testing.T) {
	h := &memHandler{arrived: make(chan struct{}, 1)}
	c := dial(t, startServer(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 200<<10) // several frames at 64 KiB
	for i := range 50 {
		body := []byte{byte(i)}
		if i == 7 {
			body = big
		}
		if err := snd.Send(ctx, goamqp.NewMessage(body), nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if snd.MaxMessageSize() == 0 {
		t.Fatal("attach reply has no max-message-size")
	}
	rcv, err := sess.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{Credit: 10, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		want := []byte{byte(i)}
		if i == 7 {
			want = big
		}
		if !bytes.Equal(m.GetData(), want) {
			t.Fatalf("message %d: %d bytes", i, len(m.GetData()))
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil { // waits for our settled disposition
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	// Manual credit and drain: nothing queued, the drain completes.
	rcv2, err := sess.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv2.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if err := rcv2.DrainCredit(dctx, nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestRefusalsAndRPC(t *testing.T) {
	h := &memHandler{arrived: make(chan struct{}, 1), ttl: time.Hour}
	c := dial(t, startServer(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sess.NewSender(ctx, "nowhere", nil)
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != "amqp:not-found" || !strings.Contains(ae.Description, "nowhere") {
		t.Fatalf("attach to a missing entity: %v", err)
	}
	if _, err = sess.NewSender(ctx, "secret", nil); !errors.As(err, &ae) || ae.Condition != "amqp:unauthorized-access" {
		t.Fatalf("attach without a claim: %v", err)
	}
	if status := putToken(t, ctx, sess, "bad"); status != 401 {
		t.Fatalf("bad token: status %d", status)
	}
	if status := putToken(t, ctx, sess, "good"); status != 200 {
		t.Fatalf("good token: status %d", status)
	}
	if _, err := sess.NewSender(ctx, "secret", nil); err != nil {
		t.Fatalf("attach with a claim: %v", err)
	}
	// The connection still serves the queue after the refusals.
	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, goamqp.NewMessage([]byte("ok")), nil); err != nil {
		t.Fatal(err)
	}
}

// putToken does a CBS put-token the way azeventhubs does (reply link with
// a target address, string message ids) and returns the status code.
func putToken(t *testing.T, ctx context.Context, sess *goamqp.Session, token string) int32 {
	t.Helper()
	replyTo := "$cbs-reply-" + token
	rcv, err := sess.NewReceiver(ctx, "$cbs", &goamqp.ReceiverOptions{TargetAddress: replyTo, SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr(), RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
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
		Properties:            &goamqp.MessageProperties{MessageID: "id-" + token, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "jwt", "name": "amqps://host/secret"},
		Value:                 token,
	}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Properties.CorrelationID != "id-"+token {
		t.Fatalf("correlation id %#v", resp.Properties.CorrelationID)
	}
	status, ok := resp.ApplicationProperties["status-code"].(int32)
	if !ok {
		t.Fatalf("status-code is %T", resp.ApplicationProperties["status-code"])
	}
	return status
}

func TestClaimExpiryDetaches(t *testing.T) {
	h := &memHandler{arrived: make(chan struct{}, 1), ttl: 300 * time.Millisecond}
	c := dial(t, startServer(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status := putToken(t, ctx, sess, "good"); status != 200 {
		t.Fatalf("status %d", status)
	}
	snd, err := sess.NewSender(ctx, "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	err = snd.Send(ctx, goamqp.NewMessage([]byte("late")), nil)
	var le *goamqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "amqp:unauthorized-access" {
		t.Fatalf("send after expiry: %v", err)
	}
}

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	h := &memHandler{arrived: make(chan struct{}, 1)}
	addr := startServer(t, h)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(wire.ProtocolHeader(wire.ProtoAMQP))                                 //nolint:errcheck
	nc.Write([]byte{0, 0, 0, 16, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}) //nolint:errcheck
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))                           //nolint:errcheck
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for {
		n, err := nc.Read(tmp)
		buf.Write(tmp[:n])
		if err != nil {
			break
		}
	}
	if !bytes.Contains(buf.Bytes(), []byte("amqp:decode-error")) && !bytes.Contains(buf.Bytes(), []byte("framing-error")) {
		t.Fatalf("no error close in % x", buf.Bytes())
	}
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.NewSession(ctx, nil); err != nil {
		t.Fatalf("a second connection: %v", err)
	}
}

// streamHandler sends n numbered messages as fast as credit allows.
type streamHandler struct {
	memHandler
	n int
}

func (h *streamHandler) Attach(ctx context.Context, c *Conn, a *wire.Attach) (Link, error) {
	return &Outbound{Run: func(ctx context.Context, s *Sender) error {
		for i := range h.n {
			body := make([]byte, 4000)
			copy(body, fmt.Sprintf("message %06d", i))
			b, _ := (&wire.Message{Data: [][]byte{body}}).Marshal()
			if err := s.Send(ctx, b, SendOptions{Settled: true}); err != nil {
				return nil
			}
		}
		<-ctx.Done()
		return nil
	}}, nil
}

// TestBacklogKeepsFramesIntact: a client that stops reading for a while
// makes the write buffer grow past a megabyte; every frame still arrives
// whole and in order (the writer once reused a buffer still being written).
func TestBacklogKeepsFramesIntact(t *testing.T) {
	h := &streamHandler{n: 20000}
	c := dial(t, startServer(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "stream", &goamqp.ReceiverOptions{Credit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let a backlog build up
	for i := range h.n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %06d", i); !bytes.HasPrefix(m.GetData(), []byte(want)) {
			t.Fatalf("message %d reads %q", i, m.GetData()[:14])
		}
		if i%1000 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestMetrics(t *testing.T) {
	h := &memHandler{arrived: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	srv := NewServer(Config{Handler: h, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln) //nolint:errcheck
	t.Cleanup(func() { cancel(); srv.Shutdown() })
	c := dial(t, ln.Addr().String())
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, goamqp.NewMessage([]byte("x")), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.NewSender(ctx, "nowhere", nil); err == nil {
		t.Fatal("attach to a missing entity succeeded")
	}
	if got := testutil.ToFloat64(m.connections); got != 1 {
		t.Errorf("connections = %v", got)
	}
	if got := testutil.ToFloat64(m.links.WithLabelValues("sender")); got != 1 {
		t.Errorf("sender links = %v", got)
	}
	if got := testutil.ToFloat64(m.deliveries.WithLabelValues("in", "accepted")); got != 1 {
		t.Errorf("accepted deliveries = %v", got)
	}
	if got := testutil.ToFloat64(m.refusals.WithLabelValues("amqp:not-found")); got != 1 {
		t.Errorf("not-found refusals = %v", got)
	}
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := testutil.ToFloat64(m.links.WithLabelValues("sender")); got != 0 {
		t.Errorf("sender links after detach = %v", got)
	}
}

// TestCloseIsAlwaysAnswered: a client that ends its session and closes at
// once gets the server's close back every time. The close is queued while
// the connection is already ending; the writer used to drop it when the end
// was still being written, and the client's close then waited forever.
func TestCloseIsAlwaysAnswered(t *testing.T) {
	addr := startServer(t, &memHandler{arrived: make(chan struct{}, 1)})
	for i := range 300 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		b := wire.ProtocolHeader(wire.ProtoAMQP)
		b, _ = wire.AppendFrame(b, wire.FrameAMQP, 0, &wire.Open{ContainerID: "client"}, nil)
		b, _ = wire.AppendFrame(b, wire.FrameAMQP, 0, &wire.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}, nil)
		b, _ = wire.AppendFrame(b, wire.FrameAMQP, 0, &wire.End{}, nil)
		b, _ = wire.AppendFrame(b, wire.FrameAMQP, 0, &wire.Close{}, nil)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		br := bufio.NewReader(nc)
		if _, err := io.ReadFull(br, make([]byte, 8)); err != nil { // the protocol header
			t.Fatalf("connection %d: header: %v", i, err)
		}
		var got []string
		closed := false
		for !closed {
			f, err := wire.ReadFrame(br, 1<<20)
			if err != nil {
				t.Fatalf("connection %d: no close in reply (got %v): %v", i, got, err)
			}
			got = append(got, fmt.Sprintf("%T", f.Body))
			_, closed = f.Body.(*wire.Close)
		}
		nc.Close()
	}
}
