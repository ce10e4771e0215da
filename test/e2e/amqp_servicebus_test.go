package e2e

// The unmodified Go Service Bus SDK (azservicebus) against Outpost's AMQP
// listener: on a queue, peek-lock messages are completed, abandoned (then
// delivered again with the count raised), dead-lettered (then read from the
// dead-letter sub-queue with reason and description), their locks renewed;
// receive-and-delete takes messages without settlement.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// receiveMessages receives until n messages arrived or the time is up.
func receiveMessages(t *testing.T, r *azservicebus.Receiver, n int, within time.Duration) []*azservicebus.ReceivedMessage {
	t.Helper()
	deadline := time.Now().Add(within)
	var out []*azservicebus.ReceivedMessage
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		cancel()
		out = append(out, msgs...)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("ReceiveMessages after %d of %d: %v", len(out), n, err)
		}
	}
	return out
}

func messageIDs(msgs []*azservicebus.ReceivedMessage) []string {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.MessageID)
	}
	sort.Strings(ids)
	return ids
}

// TestAMQPServiceBusGoSDK: azservicebus Sender and Receivers on a queue with
// the namespace connection string.
func TestAMQPServiceBusGoSDK(t *testing.T) {
	s := testserver.Start(t)
	q := createMessagingEntity(t, s, "rg-amqp-go-sb", "Microsoft.ServiceBus", "queues", "")
	client, err := azservicebus.NewClientFromConnectionString(q.ConnectionString(), &azservicebus.ClientOptions{
		TLSConfig: amqpTLS(s, q.Host), CustomEndpoint: s.IP, RetryOptions: sbRetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sender, err := client.NewSender(q.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"done", "again", "dead"} {
		err := sender.SendMessage(ctx, &azservicebus.Message{
			Body:                  fmt.Appendf(nil, `{"name":%q}`, name),
			MessageID:             to.Ptr("go-" + name),
			ContentType:           to.Ptr("application/json"),
			Subject:               to.Ptr("go-sdk"),
			ApplicationProperties: map[string]any{"name": name, "n": int64(i)},
		}, nil)
		if err != nil {
			t.Fatalf("SendMessage %s: %v", name, err)
		}
	}

	receiver, err := client.NewReceiverForQueue(q.Name, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		t.Fatal(err)
	}
	first := receiveMessages(t, receiver, 3, 10*time.Second)
	if got := messageIDs(first); !slices.Equal(got, []string{"go-again", "go-dead", "go-done"}) {
		t.Fatalf("received %v", got)
	}
	byID := map[string]*azservicebus.ReceivedMessage{}
	for _, m := range first {
		byID[m.MessageID] = m
		name := m.ApplicationProperties["name"]
		if string(m.Body) != fmt.Sprintf(`{"name":%q}`, name) || m.DeliveryCount != 1 || m.SequenceNumber == nil ||
			m.LockedUntil == nil || !m.LockedUntil.After(time.Now()) || m.EnqueuedTime == nil ||
			m.ContentType == nil || *m.ContentType != "application/json" || m.Subject == nil || *m.Subject != "go-sdk" {
			t.Errorf("message %s: body %q delivery count %d sequence %v locked until %v enqueued %v content type %v subject %v",
				m.MessageID, m.Body, m.DeliveryCount, m.SequenceNumber, m.LockedUntil, m.EnqueuedTime, m.ContentType, m.Subject)
		}
	}

	if err := receiver.CompleteMessage(ctx, byID["go-done"], nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
	if err := receiver.AbandonMessage(ctx, byID["go-again"], nil); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	if err := receiver.DeadLetterMessage(ctx, byID["go-dead"], &azservicebus.DeadLetterOptions{
		Reason: to.Ptr("BadPayload"), ErrorDescription: to.Ptr("name was dead"),
	}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}

	again := receiveMessages(t, receiver, 1, 10*time.Second)
	if len(again) != 1 || again[0].MessageID != "go-again" || again[0].DeliveryCount != 2 ||
		*again[0].SequenceNumber != *byID["go-again"].SequenceNumber {
		t.Fatalf("after abandon: %v (delivery counts %v)", messageIDs(again), deliveryCounts(again))
	}
	was := *again[0].LockedUntil
	time.Sleep(1100 * time.Millisecond)
	if err := receiver.RenewMessageLock(ctx, again[0], nil); err != nil {
		t.Fatalf("RenewMessageLock: %v", err)
	}
	if !again[0].LockedUntil.After(was) {
		t.Errorf("RenewMessageLock: locked until %v, was %v", again[0].LockedUntil, was)
	}
	if err := receiver.CompleteMessage(ctx, again[0], nil); err != nil {
		t.Fatalf("CompleteMessage after renewing: %v", err)
	}
	if extra := receiveMessages(t, receiver, 1, 1500*time.Millisecond); len(extra) != 0 {
		t.Fatalf("the queue should be empty, got %v", messageIDs(extra))
	}

	dlq, err := client.NewReceiverForQueue(q.Name, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	dead := receiveMessages(t, dlq, 1, 10*time.Second)
	if len(dead) != 1 || dead[0].MessageID != "go-dead" || dead[0].DeadLetterReason == nil || *dead[0].DeadLetterReason != "BadPayload" ||
		dead[0].DeadLetterErrorDescription == nil || *dead[0].DeadLetterErrorDescription != "name was dead" {
		t.Fatalf("dead-letter queue: %v", describe(dead))
	}
	if err := dlq.CompleteMessage(ctx, dead[0], nil); err != nil {
		t.Fatalf("complete from the dead-letter queue: %v", err)
	}

	// Receive-and-delete.
	for i := range 2 {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: fmt.Appendf(nil, "rad %d", i), MessageID: to.Ptr(fmt.Sprint("rad-", i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rad, err := client.NewReceiverForQueue(q.Name, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	if got := messageIDs(receiveMessages(t, rad, 2, 10*time.Second)); !slices.Equal(got, []string{"rad-0", "rad-1"}) {
		t.Fatalf("receive-and-delete: %v", got)
	}
	if extra := receiveMessages(t, receiver, 1, 1500*time.Millisecond); len(extra) != 0 {
		t.Fatalf("receive-and-delete left %v behind", messageIDs(extra))
	}
}

func deliveryCounts(msgs []*azservicebus.ReceivedMessage) []uint32 {
	var out []uint32
	for _, m := range msgs {
		out = append(out, m.DeliveryCount)
	}
	return out
}

func describe(msgs []*azservicebus.ReceivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s reason=%v description=%v", m.MessageID, deref(m.DeadLetterReason), deref(m.DeadLetterErrorDescription)))
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
