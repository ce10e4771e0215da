package eventhubs_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkBatchSend measures REST batch sends through TLS to the handler
// and into JetStream (embedded, file storage), reported as events/s.
// Events carry a 100-byte body and one user property, without a partition
// key (a batch lands on one round-robin partition), plus a keyed variant
// spreading each batch over all four partitions.
func BenchmarkBatchSend(b *testing.B) {
	f := newFixture(b)
	key := f.namespace(b, "ns-bench", "events", "Standard")
	tok := sign("ns-bench", "events", "RootManageSharedAccessKey", key, time.Now().Add(24*time.Hour))
	body100 := strings.Repeat("x", 100)
	for _, keyed := range []bool{false, true} {
		for _, n := range []int{100, 500} {
			items := make([]string, n)
			for i := range items {
				bp := ""
				if keyed {
					bp = fmt.Sprintf(`,"BrokerProperties":{"PartitionKey":"device-%d"}`, i%64)
				}
				items[i] = fmt.Sprintf(`{"Body":"%s","UserProperties":{"seq":%d}%s}`, body100, i, bp)
			}
			payload := "[" + strings.Join(items, ",") + "]"
			name := fmt.Sprintf("batch=%d", n)
			if keyed {
				name += "/keyed"
			}
			b.Run(name, func(b *testing.B) {
				client := f.data.Client()
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", f.data.URL+"/events/messages", strings.NewReader(payload))
						req.Host = "ns-bench.servicebus." + suffix
						req.Header.Set("Authorization", tok)
						req.Header.Set("Content-Type", "application/vnd.microsoft.servicebus.json")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
