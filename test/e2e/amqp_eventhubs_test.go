package e2e

// The unmodified Go Event Hubs SDK (azeventhubs v2) against Outpost's AMQP
// listener: batches sent to a partition and with a partition key are read
// back from the earliest position with their properties, and the hub and
// partition properties agree with what was read; reading resumes after an
// offset and at the end of a partition; an owner-level receiver displaces a
// lower one; and an IoT hub's built-in endpoint serves what a device sent
// over MQTT.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// readPartitions reads every partition from the earliest position, as many
// events as GetPartitionProperties says it holds, and checks that the
// properties describe the last event read.
func readPartitions(t *testing.T, cc *azeventhubs.ConsumerClient, ids []string) map[string][]*azeventhubs.ReceivedEventData {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string][]*azeventhubs.ReceivedEventData{}
	for _, id := range ids {
		props, err := cc.GetPartitionProperties(ctx, id, nil)
		if err != nil {
			t.Fatalf("GetPartitionProperties(%s): %v", id, err)
		}
		if props.PartitionID != id {
			t.Errorf("partition %s: properties of %q", id, props.PartitionID)
		}
		if props.IsEmpty {
			if props.LastEnqueuedSequenceNumber != -1 {
				t.Errorf("empty partition %s: last sequence number %d, want -1", id, props.LastEnqueuedSequenceNumber)
			}
			continue
		}
		n := int(props.LastEnqueuedSequenceNumber - props.BeginningSequenceNumber + 1)
		pc, err := cc.NewPartitionClient(id, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
		if err != nil {
			t.Fatal(err)
		}
		events := receiveEvents(t, pc, n, 10*time.Second)
		noMoreEvents(t, pc, time.Second, "partition "+id)
		_ = pc.Close(ctx)
		if len(events) != n {
			t.Fatalf("partition %s: read %d events, properties say %d (%+v)", id, len(events), n, props)
		}
		for i, e := range events {
			if e.SequenceNumber != props.BeginningSequenceNumber+int64(i) {
				t.Errorf("partition %s event %d: sequence number %d", id, i, e.SequenceNumber)
			}
		}
		last := events[n-1]
		if last.Offset != props.LastEnqueuedOffset || last.EnqueuedTime == nil || !last.EnqueuedTime.Equal(props.LastEnqueuedOn) {
			t.Errorf("partition %s: last event offset %q enqueued %v, properties say %q %v",
				id, last.Offset, last.EnqueuedTime, props.LastEnqueuedOffset, props.LastEnqueuedOn)
		}
		out[id] = events
	}
	return out
}

// TestAMQPEventHubsGoSDK: azeventhubs ProducerClient and ConsumerClient with
// the namespace connection string.
func TestAMQPEventHubsGoSDK(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-go-eh", "Microsoft.EventHub", "eventhubs", "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	producer, err := azeventhubs.NewProducerClientFromConnectionString(e.ConnectionString(), e.Name, ehProducerOptions(s, e.Host))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, producer)
	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(e.ConnectionString(), e.Name, azeventhubs.DefaultConsumerGroup, ehConsumerOptions(s, e.Host))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, consumer)

	hub, err := producer.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatalf("GetEventHubProperties: %v", err)
	}
	if hub.Name != e.Name || !slices.Equal(hub.PartitionIDs, []string{"0", "1", "2", "3"}) || hub.CreatedOn.IsZero() {
		t.Fatalf("event hub properties %+v", hub)
	}
	if empty, err := consumer.GetPartitionProperties(ctx, "0", nil); err != nil || !empty.IsEmpty || empty.LastEnqueuedSequenceNumber != -1 {
		t.Fatalf("partition 0 before any send: %+v, %v", empty, err)
	}

	send := func(opts *azeventhubs.EventDataBatchOptions, events ...*azeventhubs.EventData) {
		t.Helper()
		batch, err := producer.NewEventDataBatch(ctx, opts)
		if err != nil {
			t.Fatalf("NewEventDataBatch: %v", err)
		}
		for _, ev := range events {
			if err := batch.AddEventData(ev, nil); err != nil {
				t.Fatalf("AddEventData: %v", err)
			}
		}
		if err := producer.SendEventDataBatch(ctx, batch, nil); err != nil {
			t.Fatalf("SendEventDataBatch: %v", err)
		}
	}
	var pinned []*azeventhubs.EventData
	for i := range 5 {
		pinned = append(pinned, &azeventhubs.EventData{
			Body:          fmt.Appendf(nil, `{"pinned":%d}`, i),
			Properties:    map[string]any{"kind": "pinned", "n": int64(i), "even": i%2 == 0},
			ContentType:   to.Ptr("application/json"),
			MessageID:     to.Ptr(fmt.Sprint("pinned-", i)),
			CorrelationID: fmt.Sprint("corr-", i),
		})
	}
	send(&azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("0")}, pinned...)
	var keyed []*azeventhubs.EventData
	for i := range 3 {
		keyed = append(keyed, &azeventhubs.EventData{Body: fmt.Appendf(nil, "keyed %d", i), Properties: map[string]any{"kind": "keyed", "n": int64(i)}})
	}
	// A key that does not land on partition 0, which holds the pinned
	// events the offset and @latest checks below count.
	key := "sensor-42"
	for i := 0; eventhubs.PartitionForKey(key, 4) == 0; i++ {
		key = fmt.Sprint("sensor-", i)
	}
	send(&azeventhubs.EventDataBatchOptions{PartitionKey: &key}, keyed...)

	read := readPartitions(t, consumer, hub.PartitionIDs)
	var gotPinned, gotKeyed []*azeventhubs.ReceivedEventData
	keyedOn := map[string]bool{}
	for id, events := range read {
		for _, ev := range events {
			switch ev.Properties["kind"] {
			case "pinned":
				if id != "0" {
					t.Errorf("an event sent to partition 0 is on partition %s", id)
				}
				gotPinned = append(gotPinned, ev)
			case "keyed":
				keyedOn[id] = true
				gotKeyed = append(gotKeyed, ev)
			default:
				t.Errorf("partition %s: unexpected event %v", id, ev.Properties)
			}
		}
	}
	if len(gotPinned) != 5 || len(gotKeyed) != 3 || len(keyedOn) != 1 {
		t.Fatalf("read %d pinned and %d keyed events (keyed on partitions %v), want 5 and 3 on one partition", len(gotPinned), len(gotKeyed), keyedOn)
	}
	for i, ev := range gotPinned {
		if string(ev.Body) != fmt.Sprintf(`{"pinned":%d}`, i) || propString(ev.Properties, "n") != fmt.Sprint(i) ||
			ev.Properties["even"] != (i%2 == 0) || ev.ContentType == nil || *ev.ContentType != "application/json" ||
			ev.MessageID == nil || *ev.MessageID != fmt.Sprint("pinned-", i) || ev.CorrelationID != fmt.Sprint("corr-", i) ||
			ev.PartitionKey != nil || ev.EnqueuedTime == nil || time.Since(*ev.EnqueuedTime) > time.Minute {
			t.Errorf("pinned event %d: body %q properties %v content type %v message id %v correlation id %v key %v enqueued %v",
				i, ev.Body, ev.Properties, ev.ContentType, ev.MessageID, ev.CorrelationID, ev.PartitionKey, ev.EnqueuedTime)
		}
	}
	for i, ev := range gotKeyed {
		if string(ev.Body) != fmt.Sprint("keyed ", i) || ev.PartitionKey == nil || *ev.PartitionKey != key {
			t.Errorf("keyed event %d: body %q key %v", i, ev.Body, ev.PartitionKey)
		}
	}

	// Resume after the third event's offset: the fourth and fifth only.
	resume, err := consumer.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Offset: &gotPinned[2].Offset}})
	if err != nil {
		t.Fatal(err)
	}
	defer resume.Close(ctx)
	resumed := receiveEvents(t, resume, 2, 10*time.Second)
	if len(resumed) != 2 || resumed[0].SequenceNumber != gotPinned[3].SequenceNumber || resumed[1].SequenceNumber != gotPinned[4].SequenceNumber {
		t.Fatalf("after offset %s: %d events %v", gotPinned[2].Offset, len(resumed), seqs(resumed))
	}
	noMoreEvents(t, resume, time.Second, "after an offset")

	// Latest: only what is sent once the receiver is attached.
	latest, err := consumer.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Latest: to.Ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	defer latest.Close(ctx)
	// Also attaches the link, so @latest is fixed before the send below.
	noMoreEvents(t, latest, 2*time.Second, "latest, before sending")
	send(&azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("0")}, &azeventhubs.EventData{Body: []byte("newest"), Properties: map[string]any{"kind": "latest"}})
	if got := receiveEvents(t, latest, 1, 10*time.Second); len(got) != 1 || string(got[0].Body) != "newest" {
		t.Fatalf("latest: %d events %v", len(got), seqs(got))
	}
	noMoreEvents(t, latest, time.Second, "latest, after the new event")
}

func seqs(events []*azeventhubs.ReceivedEventData) []string {
	var out []string
	for _, e := range events {
		out = append(out, fmt.Sprintf("%d:%s", e.SequenceNumber, e.Body))
	}
	return out
}

// TestAMQPEventHubsOwnerLevel: a partition client with owner level 2 takes
// the partition from one with owner level 1, whose next receive fails with
// ErrorCodeOwnershipLost (the service's amqp:link:stolen).
func TestAMQPEventHubsOwnerLevel(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-go-epoch", "Microsoft.EventHub", "eventhubs", "")
	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(e.ConnectionString(), e.Name, azeventhubs.DefaultConsumerGroup, ehConsumerOptions(s, e.Host))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, consumer)
	open := func(level int64) *azeventhubs.PartitionClient {
		pc, err := consumer.NewPartitionClient("1", &azeventhubs.PartitionClientOptions{
			StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}, OwnerLevel: to.Ptr(level),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close(context.Background()) })
		noMoreEvents(t, pc, 2*time.Second, fmt.Sprint("owner level ", level)) // attaches the link
		return pc
	}
	low := open(1)
	open(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = low.ReceiveEvents(ctx, 1, nil)
	var ehErr *azeventhubs.Error
	if !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("the displaced receiver: %v, want an *azeventhubs.Error with code %s", err, azeventhubs.ErrorCodeOwnershipLost)
	}
}

// TestAMQPBuiltInEndpointGoSDK: what a device publishes over MQTT is read
// from the hub's built-in endpoint by azeventhubs with the endpoint's
// connection string (EntityPath in it, so no event hub name is passed), with
// the device id the hub stamps on each message.
func TestAMQPBuiltInEndpointGoSDK(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-amqp-go-builtin")
	key := createDevice(t, s, h, "go-sensor")
	b := hubBuiltInEndpoint(t, s, h)

	token, _ := sas.Sign(h.HostName+"/devices/go-sensor", key, "", time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
		SetClientID("go-sensor").SetUsername(h.HostName + "/go-sensor/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName}).SetProtocolVersion(4).SetAutoReconnect(false)
	mqtt := paho.NewClient(opts)
	if tok := mqtt.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	for i := range 3 {
		topic := fmt.Sprintf("devices/go-sensor/messages/events/room=lab&n=%d&$.mid=go-%d", i, i)
		if tok := mqtt.Publish(topic, 1, false, fmt.Sprintf(`{"t":%d}`, 20+i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	mqtt.Disconnect(100)

	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(b.ConnectionString(), "", azeventhubs.DefaultConsumerGroup, ehConsumerOptions(s, b.Host))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, consumer)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hub, err := consumer.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatalf("GetEventHubProperties: %v", err)
	}
	if hub.Name != b.EntityPath || len(hub.PartitionIDs) != b.Partitions {
		t.Fatalf("built-in endpoint properties %+v, want name %s and %d partitions", hub, b.EntityPath, b.Partitions)
	}
	// Telemetry reaches the endpoint asynchronously: wait until the
	// partitions hold three messages.
	for {
		total := int64(0)
		for _, id := range hub.PartitionIDs {
			p, err := consumer.GetPartitionProperties(ctx, id, nil)
			if err != nil {
				t.Fatalf("GetPartitionProperties(%s): %v", id, err)
			}
			if !p.IsEmpty {
				total += p.LastEnqueuedSequenceNumber - p.BeginningSequenceNumber + 1
			}
		}
		if total >= 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the built-in endpoint holds %d messages, want 3", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var got []*azeventhubs.ReceivedEventData
	for _, events := range readPartitions(t, consumer, hub.PartitionIDs) {
		got = append(got, events...)
	}
	if len(got) != 3 {
		t.Fatalf("read %d messages, want 3: %v", len(got), seqs(got))
	}
	for i, ev := range got {
		if string(ev.Body) != fmt.Sprintf(`{"t":%d}`, 20+i) || propString(ev.Properties, "room") != "lab" ||
			propString(ev.Properties, "n") != fmt.Sprint(i) || ev.MessageID == nil || *ev.MessageID != fmt.Sprint("go-", i) ||
			ev.SystemProperties["iothub-connection-device-id"] != "go-sensor" {
			t.Errorf("message %d: body %q properties %v message id %v system properties %v", i, ev.Body, ev.Properties, ev.MessageID, ev.SystemProperties)
		}
	}
}
