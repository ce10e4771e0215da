package bus_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// benchModes are the modes to benchmark: embedded always, external only
// when its server is configured (a benchmark never fails for a missing one).
func benchModes() []mode {
	if os.Getenv(testenv.NATSEnv) == "" {
		return modes[:1]
	}
	return modes
}

func BenchmarkPublish(b *testing.B) {
	payload := make([]byte, 256)
	for _, m := range benchModes() {
		b.Run(m.name, func(b *testing.B) {
			bs := openBus(b, m.config(b))
			ensureTelemetry(b, bs)
			ctx := context.Background()
			b.Run("serial", func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					if _, err := bs.Publish(ctx, "telemetry.bench", payload, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := bs.Publish(ctx, "telemetry.bench", payload, nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkOpenEmbedded measures Open of the embedded bus (ns/op) and,
// untimed, its Close (close-ms): cold on an empty store directory, warm on
// one holding a stream with messages.
func BenchmarkOpenEmbedded(b *testing.B) {
	var closing time.Duration
	open := func(b *testing.B, dir string) {
		b.StartTimer()
		bs, err := bus.Open(context.Background(), bus.Config{StoreDir: dir}, nil)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		closeBus(b, bs)
		closing += time.Since(start)
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(closing.Microseconds())/1000/float64(b.N), "close-ms")
		closing = 0
	}
	b.Run("cold", func(b *testing.B) {
		b.StopTimer()
		for range b.N {
			open(b, b.TempDir())
		}
		report(b)
	})
	b.Run("warm", func(b *testing.B) {
		b.StopTimer()
		dir := b.TempDir()
		bs, err := bus.Open(context.Background(), bus.Config{StoreDir: dir}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ensureTelemetry(b, bs)
		payload := make([]byte, 256)
		for range 1000 {
			if _, err := bs.Publish(context.Background(), "telemetry.warm", payload, nil); err != nil {
				b.Fatal(err)
			}
		}
		closeBus(b, bs)
		for range b.N {
			open(b, dir)
		}
		report(b)
	})
}
