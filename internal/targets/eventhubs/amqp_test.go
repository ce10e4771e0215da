package eventhubs_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
)

// amqpServer serves the fixture's namespaces over AMQP on a loopback TLS
// listener (a throwaway self-signed certificate: the clients below skip
// verification, the real listener's trust is tested end to end).
func (f *fixture) amqpServer(t testing.TB) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{f.data.TLS.Certificates[0]}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := amqp.NewServer(amqp.Config{Handler: f.handler.AMQP()})
	go srv.Serve(ctx, ln) //nolint:errcheck
	t.Cleanup(func() { cancel(); srv.Shutdown() })
	return ln.Addr().String()
}

func ehClientOptions(addr string) (*azeventhubs.ProducerClientOptions, *azeventhubs.ConsumerClientOptions) {
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test listener with a throwaway certificate
	return &azeventhubs.ProducerClientOptions{TLSConfig: tc, CustomEndpoint: addr},
		&azeventhubs.ConsumerClientOptions{TLSConfig: tc, CustomEndpoint: addr}
}

// TestAMQPProduceConsume: azeventhubs sends batches (by key and to a
// partition) and reads them back from the start, from an offset, and
// through $management; a wrong key is refused, not hung.
func TestAMQPProduceConsume(t *testing.T) {
	f := newFixture(t)
	key := f.namespace(t, "ns-amqp", "telemetry", "Standard")
	addr := f.amqpServer(t)
	conn := "Endpoint=sb://ns-amqp.servicebus." + suffix + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + key
	popts, copts := ehClientOptions(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	prod, err := azeventhubs.NewProducerClientFromConnectionString(conn, "telemetry", popts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	pk := "device-7"
	batch, err := prod.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionKey: &pk})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		ct := "application/json"
		if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte(fmt.Sprintf(`{"i":%d}`, i)), ContentType: &ct,
			Properties: map[string]any{"n": int64(i), "kind": "reading"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	props, err := prod.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatalf("event hub properties: %v", err)
	}
	if props.Name != "telemetry" || len(props.PartitionIDs) != 4 {
		t.Fatalf("properties %+v", props)
	}

	p := fmt.Sprint(eventhubs.PartitionForKey(pk, 4))
	pp, err := prod.GetPartitionProperties(ctx, p, nil)
	if err != nil {
		t.Fatalf("partition properties: %v", err)
	}
	if pp.IsEmpty || pp.LastEnqueuedSequenceNumber != 9 || pp.BeginningSequenceNumber != 0 {
		t.Fatalf("partition %s properties %+v", p, pp)
	}

	cons, err := azeventhubs.NewConsumerClientFromConnectionString(conn, "telemetry", azeventhubs.DefaultConsumerGroup, copts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	pc, err := cons.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to(true)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	events, err := pc.ReceiveEvents(ctx, 10, nil)
	if err != nil || len(events) != 10 {
		t.Fatalf("received %d events: %v", len(events), err)
	}
	e := events[3]
	if string(e.Body) != `{"i":3}` || e.SequenceNumber != 3 || e.Offset != "3" || *e.PartitionKey != pk ||
		e.Properties["n"] != int64(3) || e.Properties["kind"] != "reading" || *e.ContentType != "application/json" {
		t.Fatalf("event %+v", e)
	}

	// From an offset: only later events.
	pc2, err := cons.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Offset: to("6")}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close(ctx)
	later, err := pc2.ReceiveEvents(ctx, 3, nil)
	if err != nil || len(later) != 3 || later[0].SequenceNumber != 7 {
		t.Fatalf("from offset 6: %d events, first %v: %v", len(later), first(later), err)
	}

	// A wrong key is refused promptly.
	bad, _ := azeventhubs.NewProducerClientFromConnectionString(
		"Endpoint=sb://ns-amqp.servicebus."+suffix+"/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=d3Jvbmc=", "telemetry", popts)
	defer bad.Close(ctx)
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	_, err = bad.GetEventHubProperties(bctx, nil)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wrong key: %v", err)
	}
}

func first(evs []*azeventhubs.ReceivedEventData) any {
	if len(evs) == 0 {
		return nil
	}
	return evs[0].SequenceNumber
}

func to[T any](v T) *T { return &v }
