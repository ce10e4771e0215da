package mqtt

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// benchHandler accepts telemetry at once and records nothing.
type benchHandler struct{ *fakeHandler }

func (benchHandler) Telemetry(context.Context, Identity, Message) error { return nil }

// BenchmarkPublishQoS1 measures QoS 1 telemetry over TLS, end to end through a real client:
// each client keeps a window of publishes in flight and waits for their PUBACKs. The handler
// returns at once, so this is the endpoint's own ceiling. Reported as msgs/s; never asserted.
func BenchmarkPublishQoS1(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			f := newTestServer(b, func(f *fixture) { f.hh = benchHandler{f.h} })
			benchPublish(b, f, clients)
		})
	}
}

func benchPublish(b *testing.B, f *fixture, clients int) {
	const window = 64
	payload := []byte(`{"temperature":21.5,"humidity":40}`)
	cs := make([]paho.Client, clients)
	for i := range cs {
		cs[i], _ = f.connect(fmt.Sprintf("bench%d", i))
	}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range cs {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		topic := fmt.Sprintf("devices/bench%d/messages/events/%%24.ct=application%%2Fjson&%%24.ce=utf-8", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks := make([]paho.Token, 0, window)
			for sent := 0; sent < n; {
				toks = toks[:0]
				for ; len(toks) < window && sent < n; sent++ {
					toks = append(toks, c.Publish(topic, 1, false, payload))
				}
				for _, tok := range toks {
					if tok.Wait(); tok.Error() != nil {
						b.Error(tok.Error())
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
