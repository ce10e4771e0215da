package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// What a blob throughput sample measures: one call of the unmodified Go
// azblob client (Shared Key, HTTPS, path-style account URL, one client and
// connection pool per server, retries off), from the call to its last byte
// acknowledged or read. Outpost and Azurite run as subprocesses, one at a
// time: each is started before its sub-benchmarks and stopped after them, so
// the other server is not even idle next to it. The client's transport is
// the one azcore uses by default (sdkHTTPClient), so it speaks HTTP/2 to a
// server that offers it, as Outpost's Go server does, and HTTP/1.1 to
// Azurite (and to Azure Storage, which speaks nothing else); -v logs which.
// MB/s is b.SetBytes over ns/op; the other figures are reported per
// operation:
//
//   - server-cpu-ms/op: user+system CPU the server process used
//     (/proc/PID/stat, 10 ms ticks), which the machine's other load does
//     not inflate the way it inflates wall time;
//   - client-cpu-ms/op: the same for this process, the azblob client (the
//     same code against both servers; TLS and, for uploads, request signing
//     and copying);
//   - MB-server-hwm: the server's peak resident memory since it started
//     (VmHWM), which shows whether it holds a blob in memory.

// blobSize is one case: an upload of size bytes with blockSize blocks, or a
// single Put Blob when blockSize is 0.
type blobSize struct {
	name      string
	size      int64
	blockSize int64
}

var blobSizes = []blobSize{
	{"4MiB", 4 << 20, 0},
	// Put Block ×8 (four at a time) and Put Block List. UploadBuffer would
	// send any buffer up to 256 MiB as one Put Blob whatever its BlockSize
	// (blockblob.MaxUploadBlobBytes), so the staged path needs UploadStream,
	// which copies each block into a buffer of its own first.
	{"64MiB", 64 << 20, 8 << 20},
}

// uploadConcurrency is how many blocks are in flight at once: the SDK
// default is 5; 4 is what test/e2e uses and divides 8 blocks evenly.
const uploadConcurrency = 4

const benchContainer = "bench"

// BenchmarkBlobUpload uploads a blob of each size per iteration, each to a
// new name, so every iteration creates a blob (none replaces one).
func BenchmarkBlobUpload(b *testing.B) {
	forEachBlobServer(b, func(b *testing.B, srv *blobServer) {
		uploads := 0
		for _, sz := range blobSizes {
			data := randomBlob(sz.size)
			b.Run(sz.name, func(b *testing.B) {
				ctx := context.Background()
				b.SetBytes(sz.size)
				measureServer(b, srv, func() {
					// A benchmark function runs more than once (b.N = 1
					// first), so the names count across runs.
					uploads++
					name := fmt.Sprintf("upload-%s-%d", sz.name, uploads)
					var err error
					if sz.blockSize == 0 {
						_, err = srv.client.UploadBuffer(ctx, benchContainer, name, data, nil)
					} else {
						_, err = srv.client.UploadStream(ctx, benchContainer, name, bytes.NewReader(data),
							&azblob.UploadStreamOptions{BlockSize: sz.blockSize, Concurrency: uploadConcurrency})
					}
					if err != nil {
						b.Fatalf("upload %s: %v", name, err)
					}
				})
			})
		}
	})
}

// BenchmarkBlobDownload reads one blob of each size per iteration with Get
// Blob (DownloadStream, one request) into io.Discard.
func BenchmarkBlobDownload(b *testing.B) {
	forEachBlobServer(b, func(b *testing.B, srv *blobServer) {
		ctx := context.Background()
		for _, sz := range blobSizes {
			name := "download-" + sz.name
			if _, err := srv.client.UploadBuffer(ctx, benchContainer, name, randomBlob(sz.size), nil); err != nil {
				b.Fatalf("upload %s: %v", name, err)
			}
			b.Run(sz.name, func(b *testing.B) {
				b.SetBytes(sz.size)
				measureServer(b, srv, func() {
					resp, err := srv.client.DownloadStream(ctx, benchContainer, name, nil)
					if err != nil {
						b.Fatalf("download %s: %v", name, err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != sz.size {
						b.Fatalf("download %s: %d of %d bytes: %v", name, n, sz.size, err)
					}
				})
			})
		}
	})
}

// forEachBlobServer runs bench as the sub-benchmarks "outpost" and
// "azurite", each against a freshly started server that holds an empty
// container benchContainer. Azurite's is skipped when it is not installed.
func forEachBlobServer(b *testing.B, bench func(*testing.B, *blobServer)) {
	for _, s := range []struct {
		name  string
		start func(*testing.B) *blobServer
	}{
		{"outpost", startOutpostBlob},
		{"azurite", startAzuriteBlob},
	} {
		b.Run(s.name, func(b *testing.B) {
			srv := s.start(b)
			if _, err := srv.client.CreateContainer(context.Background(), benchContainer, nil); err != nil {
				b.Fatalf("create container: %v", err)
			}
			b.Logf("%s: %s over %s", s.name, srv.endpoint, srv.proto)
			bench(b, srv)
		})
	}
}

// measureServer runs op b.N times on the clock and reports the CPU both
// processes spent on it and the server's peak memory.
func measureServer(b *testing.B, srv *blobServer, op func()) {
	b.Helper()
	// What the previous case (or the other server) left dirty in the page
	// cache would be written back during this one and charge its disk
	// time to whoever runs next: start every case with it on disk.
	syscall.Sync()
	pid := srv.process.cmd.Process.Pid
	serverBefore, err := readCPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	clientBefore := ownCPUTime()
	b.ResetTimer()
	for range b.N {
		op()
	}
	b.StopTimer()
	serverAfter, err := readCPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	clientAfter := ownCPUTime()
	mem, err := readMemoryStatus(pid)
	if err != nil {
		b.Fatal(err)
	}
	perOp := func(d float64) float64 { return d / float64(b.N) }
	b.ReportMetric(perOp(serverAfter-serverBefore), "server-cpu-ms/op")
	b.ReportMetric(perOp(clientAfter-clientBefore), "client-cpu-ms/op")
	b.ReportMetric(mem.hwmMiB, "MB-server-hwm")
}

// randomBlob is incompressible content, so that nothing on the way can
// shortcut it.
func randomBlob(size int64) []byte {
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data) //nolint:errcheck // ChaCha8.Read never fails
	return data
}

// ownCPUTime is the user+system CPU this process has used, in milliseconds.
func ownCPUTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}
