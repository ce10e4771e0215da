package e2e

// Bad input on Outpost's AMQP listener, with github.com/Azure/go-amqp (the
// engine under azeventhubs and azservicebus) and raw TLS bytes: a CBS
// put-token whose token does not cover the audience it claims, has expired,
// names another namespace or is signed with a wrong key is answered with
// status 401 (and a good one with 200, on the same connection); attaching to
// an event hub without a token is refused with amqp:unauthorized-access; and
// malformed bytes close only the connection that sent them, while a
// connection opened before keeps sending and a new one can be opened.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// dialAMQP opens a connection as the Azure Go SDKs do: TLS, SASL ANONYMOUS,
// the namespace host as the open's hostname.
func dialAMQP(t *testing.T, s *testserver.Server, host string) *amqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqps://"+amqpAddr(s), &amqp.ConnOptions{
		TLSConfig: amqpTLS(s, host), SASLType: amqp.SASLTypeAnonymous(), HostName: host,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", amqpAddr(s), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// cbsClient puts tokens on a connection's $cbs node the way the Azure SDKs
// do: a sender to $cbs and a receiver from it whose target address is the
// reply-to, asking for settled replies.
type cbsClient struct {
	sender   *amqp.Sender
	receiver *amqp.Receiver
	replyTo  string
}

func newCBS(t *testing.T, conn *amqp.Conn) cbsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	session, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	replyTo := "cbs-reply-" + uuid.NewString()
	sender, err := session.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatalf("attach sender $cbs: %v", err)
	}
	receiver, err := session.NewReceiver(ctx, "$cbs", &amqp.ReceiverOptions{
		TargetAddress:             replyTo,
		Credit:                    10,
		RequestedSenderSettleMode: amqp.SenderSettleModeSettled.Ptr(),
		SettlementMode:            amqp.ReceiverSettleModeFirst.Ptr(),
	})
	if err != nil {
		t.Fatalf("attach receiver $cbs: %v", err)
	}
	return cbsClient{sender, receiver, replyTo}
}

// putToken sends one put-token request and returns the reply's status code
// and description.
func (c cbsClient) putToken(t *testing.T, audience, token string) (int64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := uuid.NewString()
	err := c.sender.Send(ctx, &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id, ReplyTo: &c.replyTo},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      "servicebus.windows.net:sastoken",
			"name":      audience,
		},
		Value: token,
	}, nil)
	if err != nil {
		t.Fatalf("put-token send: %v", err)
	}
	resp, err := c.receiver.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("put-token reply: %v", err)
	}
	_ = c.receiver.AcceptMessage(ctx, resp) // a no-op for a settled reply
	if resp.Properties == nil || resp.Properties.CorrelationID != id {
		t.Fatalf("put-token reply correlates with %+v, want %q", resp.Properties, id)
	}
	desc, _ := resp.ApplicationProperties["status-description"].(string)
	switch code := resp.ApplicationProperties["status-code"].(type) {
	case int32:
		return int64(code), desc
	default:
		t.Fatalf("status-code %v (%T): the Go SDKs need an AMQP int", code, code)
		return 0, ""
	}
}

// TestAMQPCBSRefusals: put-token answers 401 for a token that does not
// authorize its audience, and the connection stays usable for a good one.
func TestAMQPCBSRefusals(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-cbs", "Microsoft.EventHub", "eventhubs", "")
	audience := "amqps://" + e.Host + "/" + e.Name
	hour := time.Now().Add(time.Hour)
	cbs := newCBS(t, dialAMQP(t, s, e.Host))
	for _, tc := range []struct {
		name, audience, token string
		want                  int64
	}{
		{"a token for another entity", audience, sas.SignRawKey("amqps://"+e.Host+"/other-hub", e.Key, "RootManageSharedAccessKey", hour), 401},
		{"a token for another namespace", audience, sas.SignRawKey("amqps://elsewhere.servicebus."+s.Config.DNSSuffix+"/"+e.Name, e.Key, "RootManageSharedAccessKey", hour), 401},
		{"an expired token", audience, sas.SignRawKey(audience, e.Key, "RootManageSharedAccessKey", time.Now().Add(-10*time.Minute)), 401},
		{"a wrong key", audience, sas.SignRawKey(audience, "not-the-key", "RootManageSharedAccessKey", hour), 401},
		{"an unknown key name", audience, sas.SignRawKey(audience, e.Key, "NoSuchRule", hour), 401},
		{"a good token", audience, sas.SignRawKey(audience, e.Key, "RootManageSharedAccessKey", hour), 200},
	} {
		if code, desc := cbs.putToken(t, tc.audience, tc.token); code != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, code, desc, tc.want)
		}
	}
}

// TestAMQPAttachWithoutToken: links to an event hub on a connection that put
// no token are refused with amqp:unauthorized-access.
func TestAMQPAttachWithoutToken(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-notoken", "Microsoft.EventHub", "eventhubs", "")
	conn := dialAMQP(t, s, e.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	session, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	unauthorized := func(what string, err error) {
		t.Helper()
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Condition != amqp.ErrCondUnauthorizedAccess {
			t.Errorf("%s without a token: %v, want %s", what, err, amqp.ErrCondUnauthorizedAccess)
		}
	}
	_, err = session.NewSender(ctx, e.Name, nil)
	unauthorized("a sender to "+e.Name, err)
	source := e.Name + "/ConsumerGroups/$Default/Partitions/0"
	_, err = session.NewReceiver(ctx, source, &amqp.ReceiverOptions{
		Filters: []amqp.LinkFilter{amqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '-1'")},
	})
	unauthorized("a receiver from "+source, err)
}

// TestAMQPMalformedInput: bytes that are not AMQP close the connection that
// sent them, promptly; a connection opened before goes on sending, and a new
// one can be opened.
func TestAMQPMalformedInput(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-malformed", "Microsoft.EventHub", "eventhubs", "")
	audience := "amqps://" + e.Host + "/" + e.Name
	token := sas.SignRawKey(audience, e.Key, "RootManageSharedAccessKey", time.Now().Add(time.Hour))

	// A working sender, attached before the bad input arrives.
	good := dialAMQP(t, s, e.Host)
	if code, desc := newCBS(t, good).putToken(t, audience, token); code != 200 {
		t.Fatalf("put-token: %d %s", code, desc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	session, err := good.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := session.NewSender(ctx, e.Name, nil)
	if err != nil {
		t.Fatalf("attach sender: %v", err)
	}
	send := func(what string) {
		t.Helper()
		if err := sender.Send(ctx, &amqp.Message{Data: [][]byte{[]byte(what)}}, nil); err != nil {
			t.Fatalf("send %s: %v", what, err)
		}
	}
	send("before")

	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"not a protocol header", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"an unknown protocol version", []byte("AMQP\x00\x02\x00\x00")},
		// size 16, data offset 1 (the minimum is 2), then junk.
		{"a data offset below 2", afterHeader(0, 0, 0, 16, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)},
		// A frame far larger than any max-frame-size, before open.
		{"an oversized frame", afterHeader(0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x53, 0x10)},
		// A well-framed body that is not a described performative.
		{"a body that is no performative", afterHeader(0, 0, 0, 16, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		// An open whose list says it holds more bytes than the frame has.
		{"a truncated open", afterHeader(0, 0, 0, 16, 2, 0, 0, 0, 0, 0x53, 0x10, 0xd0, 0, 0, 0xff, 0xff)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", amqpAddr(s), amqpTLS(s, e.Host))
			if err != nil {
				t.Fatalf("TLS dial: %v", err)
			}
			defer raw.Close()
			if _, err := raw.Write(tc.bytes); err != nil {
				t.Fatalf("write: %v", err)
			}
			// Whatever the server answers (its header, a close with
			// amqp:connection:framing-error), it must then hang up.
			_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, raw)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server kept the connection open 5 s after %s (read %d bytes)", tc.name, n)
			}
		})
		send("after " + tc.name)
	}

	fresh := dialAMQP(t, s, e.Host)
	if code, desc := newCBS(t, fresh).putToken(t, audience, token); code != 200 {
		t.Fatalf("a new connection's put-token: %d %s", code, desc)
	}
}

// afterHeader is a bare AMQP protocol header (no SASL, as the Node IoT SDKs
// send it) followed by frame bytes.
func afterHeader(frame ...byte) []byte { return append([]byte("AMQP\x00\x01\x00\x00"), frame...) }
