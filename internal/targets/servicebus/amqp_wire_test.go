package servicebus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/sas"
)

// What the SDK hides: the exact wire types, the outcomes it never sends
// (released) or that are refused (defer), and $management's answers.

// amqpSession dials with ANONYMOUS and puts a namespace token.
func (f *amqpFixture) amqpSession(t *testing.T, ctx context.Context, ns, key string) *goamqp.Session {
	t.Helper()
	conn, err := goamqp.Dial(ctx, "amqp://"+f.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), HostName: f.host(ns)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := sas.SignRawKey("sb://"+f.host(ns)+"/", key, "RootManageSharedAccessKey", time.Now().Add(time.Hour))
	if status, desc := putToken(t, ctx, sess, "sb://"+f.host(ns), token, "servicebus.windows.net:sastoken"); status != 200 {
		t.Fatalf("put-token: %d %s", status, desc)
	}
	return sess
}

// rpc sends one $management request and returns the response.
func rpc(t *testing.T, ctx context.Context, sess *goamqp.Session, node, op string, body map[string]any) *goamqp.Message {
	t.Helper()
	replyTo := node + "-reply-" + uuid.NewString()
	rcv, err := sess.NewReceiver(ctx, node, &goamqp.ReceiverOptions{TargetAddress: replyTo, SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr(),
		RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	snd, err := sess.NewSender(ctx, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	id := uuid.NewString()
	msg := &goamqp.Message{Properties: &goamqp.MessageProperties{MessageID: id, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{"operation": op}, Value: body}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Properties == nil || resp.Properties.CorrelationID != id {
		t.Fatalf("response correlation id %v, want %s", resp.Properties, id)
	}
	return resp
}

func status(m *goamqp.Message) int32 {
	s, _ := m.ApplicationProperties["status-code"].(int32)
	return s
}

func TestAMQPWireTypesAndOutcomes(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-wire", "")
	f.armDo("PUT", f.nsBase+"sbns-wire/queues/q"+apiVersion, `{"properties":{}}`, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess := f.amqpSession(t, ctx, "sbns-wire", key)

	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := goamqp.UUID(uuid.New())
	sent := &goamqp.Message{Data: [][]byte{[]byte("a"), []byte("b")}, Properties: &goamqp.MessageProperties{MessageID: id},
		Annotations: goamqp.Annotations{"custom": "kept"}}
	if err := snd.Send(ctx, sent, nil); err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr(), Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	lock, ok := m.DeliveryAnnotations["x-opt-lock-token"].(goamqp.UUID)
	if !ok {
		t.Fatalf("x-opt-lock-token is %T", m.DeliveryAnnotations["x-opt-lock-token"])
	}
	if !bytes.Equal(m.DeliveryTag, lockTokenTag([16]byte(lock))) || bytes.Equal(m.DeliveryTag, lock[:]) {
		t.Errorf("delivery tag % x for lock token %s: not .NET byte order", m.DeliveryTag, uuid.UUID(lock))
	}
	for k, want := range map[string]any{"x-opt-sequence-number": int64(0), "x-opt-enqueue-sequence-number": int64(0),
		"x-opt-enqueued-time": time.Time{}, "x-opt-locked-until": time.Time{}, "custom": ""} {
		if got, ok := m.Annotations[k]; !ok || typeName(got) != typeName(want) {
			t.Errorf("annotation %s = %T, want %T", k, got, want)
		}
	}
	if m.Properties.MessageID != id || len(m.Data) != 2 || string(m.Data[1]) != "b" || m.Header.DeliveryCount != 0 {
		t.Errorf("received id %#v data %q header %+v", m.Properties.MessageID, m.Data, m.Header)
	}

	// Defer: set aside, received only by its sequence number through
	// $management, locked there and settled by lock token.
	if err := rcv.ModifyMessage(ctx, m, &goamqp.ModifyMessageOptions{UndeliverableHere: true}); err != nil {
		t.Fatalf("defer: %v", err)
	}
	seq := m.Annotations["x-opt-sequence-number"].(int64)
	receiveDeferred := func(disposition string) uint32 {
		t.Helper()
		resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:receive-by-sequence-number",
			map[string]any{"sequence-numbers": []int64{seq}, "receiver-settle-mode": uint32(1)})
		if status(resp) != 200 {
			t.Fatalf("receive-by-sequence-number = %d %v", status(resp), resp.ApplicationProperties)
		}
		entry := resp.Value.(map[string]any)["messages"].([]any)[0].(map[string]any)
		var dm goamqp.Message
		if err := dm.UnmarshalBinary(entry["message"].([]byte)); err != nil {
			t.Fatal(err)
		}
		if dm.Annotations["x-opt-message-state"] != int64(1) || dm.Annotations["x-opt-sequence-number"] != seq ||
			dm.DeliveryAnnotations["x-opt-lock-token"] != entry["lock-token"] || string(dm.Data[0]) != "a" {
			t.Errorf("deferred message: %v %v %q", dm.Annotations, dm.DeliveryAnnotations, dm.Data)
		}
		resp = rpc(t, ctx, sess, "q/$management", "com.microsoft:update-disposition",
			map[string]any{"disposition-status": disposition, "lock-tokens": []goamqp.UUID{entry["lock-token"].(goamqp.UUID)}})
		if status(resp) != 200 {
			t.Fatalf("update-disposition %s = %d %v", disposition, status(resp), resp.ApplicationProperties)
		}
		return dm.Header.DeliveryCount
	}
	if n := receiveDeferred("abandoned"); n != 1 {
		t.Errorf("deferred message's delivery-count = %d, want 1", n)
	}
	if n := receiveDeferred("completed"); n != 2 {
		t.Errorf("deferred message's delivery-count = %d, want 2", n)
	}
	if resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:receive-by-sequence-number",
		map[string]any{"sequence-numbers": []int64{seq}, "receiver-settle-mode": uint32(1)}); status(resp) != 404 {
		t.Errorf("receiving a completed deferred message = %d", status(resp))
	}

	// Release gives a message back without counting the delivery.
	if err := snd.Send(ctx, goamqp.NewMessage([]byte("second")), nil); err != nil {
		t.Fatal(err)
	}
	if m, err = rcv.Receive(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := rcv.ReleaseMessage(ctx, m); err != nil {
		t.Fatalf("release: %v", err)
	}
	if m, err = rcv.Receive(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if string(m.GetData()) != "second" || m.Header.DeliveryCount != 0 {
		t.Errorf("after release: %q delivery-count %d, want 0", m.GetData(), m.Header.DeliveryCount)
	}
	// Abandon with properties to modify: kept, counted.
	if err := rcv.ModifyMessage(ctx, m, &goamqp.ModifyMessageOptions{Annotations: goamqp.Annotations{"reason": "busy", "tries": int32(1)}}); err != nil {
		t.Fatalf("abandon with properties: %v", err)
	}
	m, err = rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.DeliveryCount != 1 || m.ApplicationProperties["reason"] != "busy" || m.ApplicationProperties["tries"] != int32(1) {
		t.Errorf("after abandon with properties: header %+v properties %v", m.Header, m.ApplicationProperties)
	}

	// $management: renew answers an array of timestamps, unknown
	// operations 501, peeks beyond the end 204.
	resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:renew-lock",
		map[string]any{"lock-tokens": []goamqp.UUID{m.DeliveryAnnotations["x-opt-lock-token"].(goamqp.UUID)}})
	if exp, ok := resp.Value.(map[string]any)["expirations"].([]time.Time); status(resp) != 200 || !ok || len(exp) != 1 {
		t.Errorf("renew-lock = %d %#v", status(resp), resp.Value)
	}
	if resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:no-such-thing", map[string]any{}); status(resp) != 501 {
		t.Errorf("unknown operation = %d %v", status(resp), resp.ApplicationProperties)
	}
	if resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:peek-message",
		map[string]any{"from-sequence-number": int64(1 << 40), "message-count": int32(5)}); status(resp) != 204 {
		t.Errorf("peek past the end = %d", status(resp))
	}
	if resp := rpc(t, ctx, sess, "q/$management", "com.microsoft:update-disposition",
		map[string]any{"disposition-status": "completed", "lock-tokens": []goamqp.UUID{goamqp.UUID(uuid.New())}}); status(resp) != 410 ||
		fmt.Sprint(resp.ApplicationProperties["error-condition"]) != "com.microsoft:message-lock-lost" {
		t.Errorf("update-disposition of an unknown lock = %d %v", status(resp), resp.ApplicationProperties)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatalf("complete: %v", err)
	}

	// A session receiver is refused clearly.
	var ae *goamqp.Error
	_, err = sess.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{Filters: []goamqp.LinkFilter{
		goamqp.NewLinkFilter("com.microsoft:session-filter", 0x00000137000000C, "s1")}})
	if !errors.As(err, &ae) || ae.Condition != "amqp:not-allowed" {
		t.Errorf("session receiver: %v", err)
	}
}

func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "long"
	case time.Time:
		return "timestamp"
	case string:
		return "string"
	}
	return "other"
}

// TestAMQPScheduled: a message sent with a scheduled enqueue time, and
// ScheduleMessages / CancelScheduledMessages on a queue and a topic.
func TestAMQPScheduled(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-sched", "")
	f.armDo("PUT", f.nsBase+"sbns-sched/queues/q"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-sched/topics/t"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-sched/topics/t/subscriptions/s1"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-sched/topics/t/subscriptions/s2"+apiVersion, `{"properties":{}}`, 200)
	client := f.rootClient("sbns-sched", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := client.NewSender("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Second)
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("later"), MessageID: ptr("later"), ScheduledEnqueueTime: &at}, nil); err != nil {
		t.Fatalf("a message scheduled for later: %v", err)
	}
	seqs, err := sender.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("x"), MessageID: ptr("kept")}, {Body: []byte("y"), MessageID: ptr("cancelled")}}, at, nil)
	if err != nil || len(seqs) != 2 {
		t.Fatalf("ScheduleMessages = %v, %v", seqs, err)
	}
	if err := sender.CancelScheduledMessages(ctx, seqs[1:], nil); err != nil {
		t.Fatalf("CancelScheduledMessages: %v", err)
	}
	if err := sender.CancelScheduledMessages(ctx, seqs[1:], nil); sbCode(err) != azservicebus.CodeNotFound {
		t.Errorf("cancelling twice: %v", err)
	}
	tseqs, err := topic.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("t"), MessageID: ptr("topic-cancelled")}}, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.CancelScheduledMessages(ctx, tseqs, nil); err != nil {
		t.Fatalf("cancel on the topic: %v", err)
	}
	// Due already: enqueued at once.
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("now"), MessageID: ptr("due"), ScheduledEnqueueTime: ptr(time.Now().Add(-time.Minute))}, nil); err != nil {
		t.Fatalf("a message due already: %v", err)
	}
	r, err := client.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, r, 1, 5*time.Second); len(got) != 1 || got[0].MessageID != "due" || time.Now().After(at) {
		t.Fatalf("before the scheduled time: %v", ids(got))
	}
	got := receive(t, r, 2, 5*time.Second)
	if !slices.Equal(ids(got), []string{"kept", "later"}) {
		t.Fatalf("after the scheduled time: %v", ids(got))
	}
	for _, m := range got {
		if m.ScheduledEnqueueTime == nil || m.ScheduledEnqueueTime.Unix() != at.Unix() || m.EnqueuedTime.Before(at.Truncate(time.Second)) {
			t.Errorf("%s: scheduled %v enqueued %v, want %v", m.MessageID, m.ScheduledEnqueueTime, m.EnqueuedTime, at)
		}
	}
	for _, sub := range []string{"s1", "s2"} {
		r, err := client.NewReceiverForSubscription("t", sub, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
		if err != nil {
			t.Fatal(err)
		}
		if got := receive(t, r, 1, 300*time.Millisecond); len(got) != 0 {
			t.Errorf("subscription %s got the cancelled message: %v", sub, ids(got))
		}
	}
}
