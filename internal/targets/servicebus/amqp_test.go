package servicebus

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/sas"
)

// The unmodified Go SDK, azservicebus, against the AMQP handler.

func TestAMQPSendReceiveComplete(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-amqp", "")
	f.armDo("PUT", f.nsBase+"sbns-amqp/queues/orders"+apiVersion, `{"properties":{}}`, 200)
	client := f.rootClient("sbns-amqp", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	props := map[string]any{"s": "red", "n": int64(5), "i": int32(-7), "b": true, "f": 2.5, "t": when, "u": uint64(1) << 40}
	err = sender.SendMessage(ctx, &azservicebus.Message{
		Body: []byte("hello"), MessageID: ptr("m-1"), CorrelationID: ptr("c-1"), Subject: ptr("greeting"),
		ContentType: ptr("text/plain"), To: ptr("someone"), ReplyTo: ptr("back"), TimeToLive: ptr(time.Hour),
		PartitionKey: ptr("pk"), ApplicationProperties: props,
	}, nil)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}

	receiver, err := client.NewReceiverForQueue("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, receiver, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("received %d messages", len(got))
	}
	m := got[0]
	if string(m.Body) != "hello" || m.MessageID != "m-1" || *m.CorrelationID != "c-1" || *m.Subject != "greeting" ||
		*m.ContentType != "text/plain" || *m.To != "someone" || *m.ReplyTo != "back" || *m.PartitionKey != "pk" ||
		m.DeliveryCount != 1 || m.SequenceNumber == nil || *m.SequenceNumber <= 0 || m.EnqueuedTime == nil ||
		m.LockedUntil == nil || !m.LockedUntil.After(time.Now()) || *m.TimeToLive != time.Hour {
		t.Errorf("received %+v", m)
	}
	if m.LockToken == ([16]byte{}) {
		t.Error("no lock token")
	}
	for k, want := range props {
		if got := m.ApplicationProperties[k]; got != want && !(k == "t" && got.(time.Time).Equal(when)) {
			t.Errorf("property %s = %#v (%T), want %#v (%T)", k, got, got, want, want)
		}
	}
	// A lock taken over AMQP settles over REST too (one lock table).
	auth := f.sas("sbns-amqp", "", "RootManageSharedAccessKey", key)
	f.expect("DELETE", "sbns-amqp", "/orders/messages/"+strconv.FormatInt(*m.SequenceNumber, 10)+"/"+uuid.UUID(m.LockToken).String(), auth, "", nil, 200)
	// Again, by lock token through $management: the lock is gone.
	if err := receiver.CompleteMessage(ctx, &azservicebus.ReceivedMessage{LockToken: m.LockToken}, nil); sbCode(err) != azservicebus.CodeLockLost {
		t.Errorf("completing twice: %v", err)
	}
	if extra := receive(t, receiver, 1, 300*time.Millisecond); len(extra) != 0 {
		t.Errorf("the queue still has %d messages", len(extra))
	}

	// AMQP to REST: the same message, read by a REST receiver.
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("to-rest"), MessageID: ptr("m-2"),
		Subject: ptr("x"), ApplicationProperties: props}, nil); err != nil {
		t.Fatal(err)
	}
	resp, body := f.expect("DELETE", "sbns-amqp", "/orders/messages/head?timeout=5", auth, "", nil, 200)
	bp := brokerProps(t, resp)
	if body != "to-rest" || bp["MessageId"] != "m-2" || bp["Label"] != "x" || resp.Header.Get("s") != `"red"` ||
		resp.Header.Get("n") != "5" || resp.Header.Get("i") != "-7" || resp.Header.Get("b") != "true" {
		t.Errorf("REST receive of an AMQP message: %q %v %v", body, bp, resp.Header)
	}

	// REST to AMQP.
	f.expect("POST", "sbns-amqp", "/orders/messages", auth, "from-rest", map[string]string{
		"BrokerProperties": `{"Label":"L","MessageId":"r-1","CorrelationId":"rc"}`, "Color": `"blue"`, "Size": "3", "Content-Type": "application/json",
	}, 201)
	got = receive(t, receiver, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("received %d messages sent over REST", len(got))
	}
	m = got[0]
	if string(m.Body) != "from-rest" || m.MessageID != "r-1" || *m.Subject != "L" || *m.CorrelationID != "rc" ||
		*m.ContentType != "application/json" || m.ApplicationProperties["Color"] != "blue" || m.ApplicationProperties["Size"] != int64(3) {
		t.Errorf("AMQP receive of a REST message: %q %+v %v", m.Body, m, m.ApplicationProperties)
	}
	if err := receiver.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAMQPAbandonDeadLetterRenewPeek(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-lock", "")
	f.armDo("PUT", f.nsBase+"sbns-lock/queues/work"+apiVersion, `{"properties":{"lockDuration":"PT5S"}}`, 200)
	client := f.rootClient("sbns-lock", key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sender, err := client.NewSender("work", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"again", "dead"} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(id), MessageID: ptr(id)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	receiver, err := client.NewReceiverForQueue("work", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := receive(t, receiver, 2, 10*time.Second)
	if len(first) != 2 {
		t.Fatalf("received %d", len(first))
	}
	byID := map[string]*azservicebus.ReceivedMessage{}
	for _, m := range first {
		byID[m.MessageID] = m
	}

	// Peek sees locked messages, from the first sequence number on.
	peeked, err := receiver.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: byID["again"].SequenceNumber})
	if err != nil {
		t.Fatalf("PeekMessages: %v", err)
	}
	if len(peeked) != 2 || peeked[0].MessageID != "again" || peeked[1].MessageID != "dead" || *peeked[0].SequenceNumber != *byID["again"].SequenceNumber {
		t.Errorf("peeked %v", ids(peeked))
	}
	if more, err := receiver.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: ptr(*byID["dead"].SequenceNumber + 1)}); err != nil || len(more) != 0 {
		t.Errorf("peek past the end = %v, %v", ids(more), err)
	}

	// Renew, then abandon: delivered again, counted, same sequence number.
	was := *byID["again"].LockedUntil
	time.Sleep(20 * time.Millisecond)
	if err := receiver.RenewMessageLock(ctx, byID["again"], nil); err != nil {
		t.Fatalf("RenewMessageLock: %v", err)
	}
	if !byID["again"].LockedUntil.After(was) {
		t.Errorf("renewed lock until %v, was %v", byID["again"].LockedUntil, was)
	}
	if err := receiver.AbandonMessage(ctx, byID["again"], nil); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	if err := receiver.DeadLetterMessage(ctx, byID["dead"], &azservicebus.DeadLetterOptions{
		Reason: ptr("BadPayload"), ErrorDescription: ptr("could not parse"),
	}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	again := receive(t, receiver, 1, 10*time.Second)
	if len(again) != 1 || again[0].MessageID != "again" || again[0].DeliveryCount != 2 || *again[0].SequenceNumber != *byID["again"].SequenceNumber {
		t.Fatalf("after abandon: %v", describeAll(again))
	}
	// Settled through $management (update-disposition) by lock token
	// alone, as the SDK does when the receiver link is gone.
	if err := receiver.CompleteMessage(ctx, &azservicebus.ReceivedMessage{LockToken: again[0].LockToken}, nil); err != nil {
		t.Fatalf("CompleteMessage by lock token: %v", err)
	}
	if err := receiver.RenewMessageLock(ctx, again[0], nil); sbCode(err) != azservicebus.CodeLockLost {
		t.Errorf("renewing a completed message's lock: %v", err)
	}

	dlq, err := client.NewReceiverForQueue("work", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	dead := receive(t, dlq, 1, 10*time.Second)
	if len(dead) != 1 || dead[0].MessageID != "dead" || dead[0].DeadLetterReason == nil || *dead[0].DeadLetterReason != "BadPayload" ||
		dead[0].DeadLetterErrorDescription == nil || *dead[0].DeadLetterErrorDescription != "could not parse" {
		t.Fatalf("dead-letter queue: %v", describeAll(dead))
	}
	if err := dlq.CompleteMessage(ctx, dead[0], nil); err != nil {
		t.Fatal(err)
	}
	if extra := receive(t, receiver, 1, 300*time.Millisecond); len(extra) != 0 {
		t.Errorf("left behind: %v", ids(extra))
	}
}

func TestAMQPBatchAndReceiveAndDelete(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-rad", "")
	f.armDo("PUT", f.nsBase+"sbns-rad/queues/q"+apiVersion, `{"properties":{}}`, 200)
	client := f.rootClient("sbns-rad", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := sender.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b0", "b1", "b2"} {
		if err := batch.AddMessage(&azservicebus.Message{Body: []byte("body-" + id), MessageID: ptr(id), ApplicationProperties: map[string]any{"id": id}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := sender.SendMessageBatch(ctx, batch, nil); err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}
	rad, err := client.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, rad, 3, 10*time.Second)
	if !slices.Equal(ids(got), []string{"b0", "b1", "b2"}) {
		t.Fatalf("received %v", ids(got))
	}
	for _, m := range got {
		if string(m.Body) != "body-"+m.MessageID || m.ApplicationProperties["id"] != m.MessageID || m.LockedUntil != nil {
			t.Errorf("message %s: %q %v locked until %v", m.MessageID, m.Body, m.ApplicationProperties, m.LockedUntil)
		}
	}
	peek, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if left, err := peek.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: ptr(int64(0))}); err != nil || len(left) != 0 {
		t.Errorf("receive-and-delete left %v (%v)", ids(left), err)
	}
}

func TestAMQPTopicSubscription(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-topic-amqp", "")
	base := f.nsBase + "sbns-topic-amqp/topics/events"
	f.armDo("PUT", base+apiVersion, `{"properties":{}}`, 200)
	for _, s := range []string{"all", "red"} {
		f.armDo("PUT", base+"/subscriptions/"+s+apiVersion, `{"properties":{}}`, 200)
	}
	f.armDo("DELETE", base+"/subscriptions/red/rules/$Default"+apiVersion, "", 200)
	f.armDo("PUT", base+"/subscriptions/red/rules/red"+apiVersion, `{"properties":{"filterType":"SqlFilter","sqlFilter":{"sqlExpression":"color = 'red' AND size > 5"}}}`, 200)
	client := f.rootClient("sbns-topic-amqp", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []map[string]any{{"color": "red", "size": int64(10)}, {"color": "red", "size": int32(1)}, {"color": "blue", "size": int64(9)}} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: ptr("e" + string(rune('0'+i))), Body: []byte("x"), ApplicationProperties: p}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for sub, want := range map[string][]string{"all": {"e0", "e1", "e2"}, "red": {"e0"}} {
		r, err := client.NewReceiverForSubscription("events", sub, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(receive(t, r, len(want), 10*time.Second)); !slices.Equal(got, want) {
			t.Errorf("subscription %s got %v, want %v", sub, got, want)
		}
	}
	// A topic is not received from.
	r, err := client.NewReceiverForQueue("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	var ae *goamqp.Error
	if _, err := r.ReceiveMessages(rctx, 1, nil); !errors.As(err, &ae) || ae.Condition != "amqp:not-allowed" {
		t.Errorf("receiving from a topic: %v", err)
	}
}

func TestAMQPRefusals(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-deny", "")
	f.armDo("PUT", f.nsBase+"sbns-deny/queues/q"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-deny/authorizationRules/listen"+apiVersion, `{"properties":{"rights":["Listen"]}}`, 200)
	lk := f.armDo("POST", f.nsBase+"sbns-deny/authorizationRules/listen/listKeys"+apiVersion, "", 200)["primaryKey"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := &azservicebus.Message{Body: []byte("x")}
	send := func(c *azservicebus.Client, entity string) error {
		s, err := c.NewSender(entity, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		return s.SendMessage(ctx, msg, nil)
	}

	root := f.rootClient("sbns-deny", key)
	err := send(root, "missing")
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != "amqp:not-found" || !strings.Contains(ae.Description, "missing") {
		t.Errorf("send to a missing queue: %v", err)
	}
	if err := send(root, "q"); err != nil {
		t.Fatalf("send with the root key: %v", err)
	}

	// A Listen rule cannot send.
	listen := f.client(f.connectionString("sbns-deny", "SharedAccessKeyName=listen;SharedAccessKey="+lk))
	if err := send(listen, "q"); sbCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "'Send' claim(s) are required") {
		t.Errorf("send with a Listen rule: %v", err)
	}
	// A wrong key, an expired token, a token for another entity.
	wrong := f.client(f.connectionString("sbns-deny", "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=not-the-key"))
	if err := send(wrong, "q"); sbCode(err) != azservicebus.CodeUnauthorizedAccess {
		t.Errorf("send with a wrong key: %v", err)
	}
	sig := func(resource string, expiry time.Time) string {
		return "SharedAccessSignature=" + sas.SignRawKey("sb://"+f.host("sbns-deny")+"/"+resource, key, "RootManageSharedAccessKey", expiry)
	}
	expired := f.client(f.connectionString("sbns-deny", sig("", time.Now().Add(-10*time.Minute))))
	if err := send(expired, "q"); sbCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "ExpiredToken") {
		t.Errorf("send with an expired token: %v", err)
	}
	other := f.client(f.connectionString("sbns-deny", sig("other", time.Now().Add(time.Hour))))
	if err := send(other, "q"); sbCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "InvalidAudience") {
		t.Errorf("send with a token for another entity: %v", err)
	}
	if err := send(f.client(f.connectionString("sbns-deny", sig("q", time.Now().Add(time.Hour)))), "q"); err != nil {
		t.Errorf("send with a token for the queue: %v", err)
	}

	// Network rules apply to AMQP too.
	f.armDo("PUT", f.nsBase+"sbns-deny/networkRuleSets/default"+apiVersion, `{"properties":{"defaultAction":"Deny","ipRules":[{"ipMask":"10.0.0.0/8"}]}}`, 200)
	if err := send(f.rootClient("sbns-deny", key), "q"); err == nil || !strings.Contains(err.Error(), "IpFilterDenied") {
		t.Errorf("send from a denied address: %v", err)
	}
}

func ids(msgs []*azservicebus.ReceivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.MessageID)
	}
	slices.Sort(out)
	return out
}

func describeAll(msgs []*azservicebus.ReceivedMessage) string {
	var b strings.Builder
	for _, m := range msgs {
		j, _ := json.Marshal(map[string]any{"id": m.MessageID, "count": m.DeliveryCount, "seq": m.SequenceNumber,
			"reason": m.DeadLetterReason, "description": m.DeadLetterErrorDescription})
		b.Write(j)
	}
	return b.String()
}

// TestAMQPDefer: DeferMessage, then ReceiveDeferredMessages by sequence
// number; settled through $management (abandon keeps it deferred).
func TestAMQPDefer(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-defer", "")
	f.armDo("PUT", f.nsBase+"sbns-defer/queues/q"+apiVersion, `{"properties":{}}`, 200)
	client := f.rootClient("sbns-defer", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("later"), MessageID: ptr("d-1"), ApplicationProperties: map[string]any{"k": "v"}}, nil); err != nil {
		t.Fatal(err)
	}
	receiver, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, receiver, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("received %d", len(got))
	}
	seq := *got[0].SequenceNumber
	if err := receiver.DeferMessage(ctx, got[0], nil); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	// At once: the deferral is known before the client is told.
	deferred, err := receiver.ReceiveDeferredMessages(ctx, []int64{seq}, nil)
	if err != nil || len(deferred) != 1 {
		t.Fatalf("ReceiveDeferredMessages = %v, %v", ids(deferred), err)
	}
	if extra := receive(t, receiver, 1, 300*time.Millisecond); len(extra) != 0 {
		t.Fatalf("a deferred message was delivered: %v", ids(extra))
	}
	d := deferred[0]
	if d.MessageID != "d-1" || string(d.Body) != "later" || d.State != azservicebus.MessageStateDeferred || *d.SequenceNumber != seq ||
		d.DeliveryCount != 2 || d.ApplicationProperties["k"] != "v" || d.LockedUntil == nil {
		t.Errorf("deferred message: %+v", d)
	}
	if err := receiver.AbandonMessage(ctx, d, nil); err != nil {
		t.Fatalf("AbandonMessage of a deferred message: %v", err)
	}
	deferred, err = receiver.ReceiveDeferredMessages(ctx, []int64{seq}, nil)
	if err != nil || len(deferred) != 1 || deferred[0].DeliveryCount != 3 {
		t.Fatalf("ReceiveDeferredMessages after abandon = %v, %v", describeAll(deferred), err)
	}
	if err := receiver.DeadLetterMessage(ctx, deferred[0], &azservicebus.DeadLetterOptions{Reason: ptr("Gave up")}); err != nil {
		t.Fatalf("DeadLetterMessage of a deferred message: %v", err)
	}
	if _, err := receiver.ReceiveDeferredMessages(ctx, []int64{seq}, nil); sbCode(err) != azservicebus.CodeNotFound {
		t.Errorf("ReceiveDeferredMessages of a dead-lettered message: %v", err)
	}
	dlq, err := client.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter, ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	if dead := receive(t, dlq, 1, 10*time.Second); len(dead) != 1 || dead[0].MessageID != "d-1" || *dead[0].DeadLetterReason != "Gave up" {
		t.Errorf("dead-letter queue: %v", describeAll(dead))
	}
}

// TestAMQPEntityDeleted: a receiver on a queue that is deleted is detached
// with amqp:not-found, and its consumer is not made again.
func TestAMQPEntityDeleted(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-gone", "")
	f.armDo("PUT", f.nsBase+"sbns-gone/queues/q"+apiVersion, `{"properties":{}}`, 200)
	client := f.rootClient("sbns-gone", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	receiver, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, receiver, 1, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("received %v", ids(got))
	}
	f.armDo("DELETE", f.nsBase+"sbns-gone/queues/q"+apiVersion, "", 200)
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	var ae *goamqp.Error
	if _, err := receiver.ReceiveMessages(rctx, 1, nil); !errors.As(err, &ae) || ae.Condition != "amqp:not-found" {
		t.Fatalf("receiving from a deleted queue: %v", err)
	}
	time.Sleep(2 * receivePoll)
	stream, err := f.h.broker.bus.JetStream().Stream(ctx, f.h.broker.bus.Stream(streamName("sbns-gone")))
	if err != nil {
		t.Fatal(err)
	}
	for name := range stream.ConsumerNames(ctx).Name() {
		t.Errorf("consumer %s is left", name)
	}
}
