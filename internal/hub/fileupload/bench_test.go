package fileupload_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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
