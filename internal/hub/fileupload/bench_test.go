package fileupload_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/outpost-iot/outpost/internal/hub/fileupload"
)

// BenchmarkSASIssue measures identity-based SAS URI issuance (Start: blob
// name checks, a user delegation SAS signed with the cached delegation key,
// the pending upload's compare-and-set in the embedded JetStream bucket)
// with parallel devices; it reports issues/s. Never asserted:
// `go test -run x -bench SASIssue ./internal/hub/fileupload/`.
func BenchmarkSASIssue(b *testing.B) {
	f := newFixture(b)
	f.account(b, "benchacct", `{"allowSharedKeyAccess":false}`, "uploads")
	h := f.hub(b, identityBased("benchacct", "uploads"))
	f.systemIdentity(b, h, "benchacct", blobDataContributor)
	ctx := context.Background()
	if _, err := f.svc.Start(ctx, h, "warm", "x"); err != nil { // caches the delegation key
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			// Ten uploads per device, the most it may have in progress.
			if _, err := f.svc.Start(ctx, h, fmt.Sprintf("dev-%d", i/10), fmt.Sprintf("file-%d.bin", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "issues/s")
}

// BenchmarkConcurrentUploads: 200 devices upload 1 MB each at once through
// the hub (Start, the upload with the SAS the hub minted, Complete with its
// notification) and, side by side, the same 200 uploads straight to the
// storage service with SAS URIs minted by hand — the hub's overhead is the
// difference. One iteration is the whole wave; it reports MB/s.
// `go test -run x -bench ConcurrentUploads -benchtime 3x ./internal/hub/fileupload/`.
func BenchmarkConcurrentUploads(b *testing.B) {
	const devices, size = 200, 1 << 20
	f := newFixture(b)
	key := f.account(b, "waveacct", "", "uploads")
	h := f.hub(b, keyBased("waveacct", key, "uploads"))
	ctx := context.Background()
	data := make([]byte, size)
	wave := func(b *testing.B, upload func(i int) error) {
		b.SetBytes(devices * size)
		var failed atomic.Int64
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range devices {
				wg.Go(func() {
					if err := upload(i); err != nil {
						failed.Add(1)
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(failed.Load()), "failed")
	}
	var round atomic.Int64
	b.Run("via-hub", func(b *testing.B) {
		wave(b, func(i int) error {
			dev := fmt.Sprintf("dev-%d", i)
			r, err := f.svc.Start(ctx, h, dev, fmt.Sprintf("wave-%d.bin", round.Add(1)))
			if err != nil {
				return err
			}
			if err := f.deviceUpload(b, r, data); err != nil {
				return err
			}
			return f.svc.Complete(ctx, h, dev, r.CorrelationID, true, 201, "")
		})
	})
	b.Run("direct", func(b *testing.B) {
		cred, err := service.NewSharedKeyCredential("waveacct", key)
		if err != nil {
			b.Fatal(err)
		}
		wave(b, func(i int) error {
			name := fmt.Sprintf("direct/%d-%d.bin", i, round.Add(1))
			q, err := sas.BlobSignatureValues{
				Protocol: sas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour), ContainerName: "uploads", BlobName: name,
				Permissions: (&sas.BlobPermissions{Read: true, Write: true}).String(),
			}.SignWithSharedKey(cred)
			if err != nil {
				return err
			}
			return f.deviceUpload(b, fileupload.StartResult{
				HostName: "waveacct.blob." + suffix, ContainerName: "uploads", BlobName: name, SASToken: "?" + q.Encode(),
			}, data)
		})
	})
}
