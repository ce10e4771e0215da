package sqlstore_test

import (
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
)

// registrySize is how many devices BenchmarkDeviceList and
// BenchmarkDeviceCount fill their hub with; raise it to see the figures at
// IoT Hub scale: go test -run x -bench DeviceList ./internal/store/sqlstore/ -args -registry-size 1000000
var registrySize = flag.Int("registry-size", 100_000, "devices in the registry the device list and count benchmarks read")

// putManyBatch is the batch size of the bulk import benchmarks, the size an
// import job would use.
const putManyBatch = 1000

// benchDevice is device i with identity and twin documents of the size IoT
// Hub's are for a SAS device with a few tags and properties (~0.9 KB).
// Shuffled ids spread the inserts over the whole key range, as an import
// in no particular order does; ordered ones append at the end of the index.
func benchDevice(hub string, i int, shuffled bool) store.Device {
	id := fmt.Sprintf("device-%07d", i)
	if shuffled {
		h := fnv.New64a()
		fmt.Fprint(h, i)
		id = fmt.Sprintf("device-%016x", h.Sum64())
	}
	return store.Device{
		Hub: hub, DeviceID: id, Enabled: i%10 != 0,
		Identity: fmt.Appendf(nil, `{"deviceId":%q,"generationId":"638%015d","etag":"","connectionState":"Disconnected",`+
			`"status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00Z",`+
			`"statusUpdatedTime":"0001-01-01T00:00:00Z","lastActivityTime":"0001-01-01T00:00:00Z",`+
			`"cloudToDeviceMessageCount":0,"authentication":{"symmetricKey":{"primaryKey":"c2VjcmV0LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=",`+
			`"secondaryKey":"c2VjcmV0LXNlY29uZGFyeS1rZXktMDEyMzQ1Njc4OQ=="},"x509Thumbprint":{"primaryThumbprint":null,`+
			`"secondaryThumbprint":null},"type":"sas"},"capabilities":{"iotEdge":false}}`, id, i),
		Twin: fmt.Appendf(nil, `{"tags":{"site":"plant-%d","line":%d},"properties":{"desired":{"telemetryInterval":30,`+
			`"$metadata":{"$lastUpdated":"2026-01-01T00:00:00Z"},"$version":1},"reported":{"firmware":"1.4.2",`+
			`"$metadata":{"$lastUpdated":"2026-01-01T00:00:00Z"},"$version":1}},"version":2}`, i%50, i%7),
	}
}

// reportDevicesPerSecond adds the figure the registry goals are stated in.
func reportDevicesPerSecond(b *testing.B, devices int) {
	b.ReportMetric(float64(devices)/b.Elapsed().Seconds(), "devices/s")
}

func BenchmarkDeviceCreate(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ds := s.Devices()
		i := 0
		for b.Loop() {
			if _, err := ds.Create(b.Context(), benchDevice("bench", i, false)); err != nil {
				b.Fatalf("Create: %v", err)
			}
			i++
		}
		reportDevicesPerSecond(b, i)
	})
}

// BenchmarkDeviceCreateParallel creates devices from as many goroutines as
// GOMAXPROCS, as concurrent registry calls do; SQLite still writes one at a
// time, PostgreSQL in parallel.
func BenchmarkDeviceCreateParallel(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ds := s.Devices()
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ds.Create(b.Context(), benchDevice("bench", int(next.Add(1)), false)); err != nil {
					b.Errorf("Create: %v", err)
					return
				}
			}
		})
		reportDevicesPerSecond(b, int(next.Load()))
	})
}

// BenchmarkDevicePutMany imports batches of putManyBatch devices: new ones,
// in key order and shuffled, and replacements of stored ones whose twins
// change. -benchtime 1000x imports a million.
func BenchmarkDevicePutMany(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		for _, shuffled := range []bool{false, true} {
			name := "create"
			if shuffled {
				name = "create-shuffled"
			}
			b.Run(name, func(b *testing.B) {
				hub := "bench-" + name
				n := 0
				for b.Loop() {
					importBatch(b, s.Devices(), hub, n, shuffled, 0)
					n += putManyBatch
				}
				reportDevicesPerSecond(b, n)
			})
		}
		b.Run("replace", func(b *testing.B) {
			hub := "bench-replace"
			importBatch(b, s.Devices(), hub, 0, false, 0)
			round := 1
			n := 0
			for b.Loop() {
				importBatch(b, s.Devices(), hub, 0, false, round)
				round++
				n += putManyBatch
			}
			reportDevicesPerSecond(b, n)
		})
	})
}

// importBatch puts devices first … first+putManyBatch-1, their twins
// marked with round so that a replacement changes them.
func importBatch(b *testing.B, ds store.Devices, hub string, first int, shuffled bool, round int) {
	keys := make([]store.DeviceKey, putManyBatch)
	devices := make([]store.Device, putManyBatch)
	for i := range keys {
		devices[i] = benchDevice(hub, first+i, shuffled)
		if round > 0 {
			devices[i].Twin = fmt.Appendf(nil, `{"tags":{"round":%d},"properties":{"desired":{},"reported":{}}}`, round)
		}
		keys[i] = store.DeviceKey{DeviceID: devices[i].DeviceID}
	}
	errs, err := ds.PutMany(b.Context(), hub, keys, func(i int, _ *store.Device) (*store.Device, error) {
		return &devices[i], nil
	})
	if err != nil {
		b.Fatalf("PutMany: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			b.Fatalf("PutMany entry %d: %v", i, err)
		}
	}
}

// fillRegistry imports registrySize devices into hub and returns their ids.
func fillRegistry(b *testing.B, s store.Store, hub string) []string {
	ids := make([]string, 0, *registrySize)
	for first := 0; first < *registrySize; first += putManyBatch {
		importBatch(b, s.Devices(), hub, first, false, 0)
	}
	for i := range *registrySize {
		ids = append(ids, benchDevice(hub, i, false).DeviceID)
	}
	return ids
}

// BenchmarkDeviceList reads pages of 100 devices from anywhere in a full
// registry, as a client paging with a continuation token does.
func BenchmarkDeviceList(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ids := fillRegistry(b, s, "bench")
		ds := s.Devices()
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			after := ids[rng.IntN(len(ids)-100)]
			page, err := ds.List(b.Context(), store.DeviceFilter{Hub: "bench", After: after, Limit: 100})
			if err != nil || len(page) != 100 {
				b.Fatalf("List = %d devices, %v; want 100", len(page), err)
			}
		}
	})
}

// BenchmarkDeviceCount is the registry statistics of a full registry.
func BenchmarkDeviceCount(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		fillRegistry(b, s, "bench")
		ds := s.Devices()
		for b.Loop() {
			c, err := ds.Count(b.Context(), "bench")
			if err != nil || c.Total != int64(*registrySize) {
				b.Fatalf("Count = %+v, %v; want %d devices", c, err, *registrySize)
			}
		}
	})
}
