package eventhubs_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// BenchmarkAMQPSendReceive: azeventhubs sends 1,000-event batches of
// 100-byte events to the four partitions of an embedded event hub over
// AMQP (in process, loopback TLS), then four partition clients read them
// back. Reports events/s each way.
//
//	go test -run '^$' -bench AMQPSendReceive -benchtime 200000x ./internal/targets/eventhubs/
func BenchmarkAMQPSendReceive(b *testing.B) {
	f := newFixture(b)
	key := f.namespace(b, "ns-bench", "bench", "Standard")
	addr := f.amqpServer(b)
	conn := "Endpoint=sb://ns-bench.servicebus." + suffix + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + key
	popts, copts := ehClientOptions(addr)
	ctx := context.Background()
	prod, err := azeventhubs.NewProducerClientFromConnectionString(conn, "bench", popts)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close(ctx)
	body := make([]byte, 100)
	n := b.N
	perPartition := (n + 3) / 4
	start := time.Now()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := fmt.Sprint(p)
			for sent := 0; sent < perPartition; {
				batch, err := prod.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: &pid})
				if err != nil {
					b.Error(err)
					return
				}
				for i := 0; i < 1000 && sent < perPartition; i++ {
					if err := batch.AddEventData(&azeventhubs.EventData{Body: body, Properties: map[string]any{"n": int64(sent)}}, nil); err != nil {
						break
					}
					sent++
				}
				if err := prod.SendEventDataBatch(ctx, batch, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sendSecs := time.Since(start).Seconds()

	cons, err := azeventhubs.NewConsumerClientFromConnectionString(conn, "bench", azeventhubs.DefaultConsumerGroup, copts)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close(ctx)
	start = time.Now()
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, err := cons.NewPartitionClient(fmt.Sprint(p), &azeventhubs.PartitionClientOptions{
				StartPosition: azeventhubs.StartPosition{Earliest: to(true)}, Prefetch: 3000})
			if err != nil {
				b.Error(err)
				return
			}
			defer pc.Close(ctx)
			for got := 0; got < perPartition; {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				evs, err := pc.ReceiveEvents(rctx, 1000, nil)
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				got += len(evs)
			}
		}()
	}
	wg.Wait()
	recvSecs := time.Since(start).Seconds()
	b.ReportMetric(float64(4*perPartition)/sendSecs, "sent-events/s")
	b.ReportMetric(float64(4*perPartition)/recvSecs, "received-events/s")
}
