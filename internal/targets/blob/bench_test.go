package blob_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

const benchSize = 4 << 20

// BenchmarkUpload uploads 4 MiB blobs through azblob (Put Blob) with a
// Shared Key: TLS, signature check, spool to disk, fsync, rename.
func BenchmarkUpload(b *testing.B) {
	f := newFixture(b)
	c := f.sharedKeyClient(b, "bench", f.account(b, "bench", ""))
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	data := randomBytes(b, benchSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.UploadBuffer(ctx, "bench", fmt.Sprintf("b%d", i%64), data, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadBlocks uploads 64 MiB blobs in 8 MiB blocks, four at a
// time (Put Block ×8, Put Block List), as azblob's UploadStream does.
func BenchmarkUploadBlocks(b *testing.B) {
	f := newFixture(b)
	c := f.sharedKeyClient(b, "bench", f.account(b, "bench", ""))
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	data := randomBytes(b, 64<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		opts := &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4}
		if _, err := c.UploadStream(ctx, "bench", fmt.Sprintf("b%d", i%8), bytes.NewReader(data), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownload downloads a 4 MiB blob through azblob.
func BenchmarkDownload(b *testing.B) {
	f := newFixture(b)
	c := f.sharedKeyClient(b, "bench", f.account(b, "bench", ""))
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	if _, err := c.UploadBuffer(ctx, "bench", "blob", randomBytes(b, benchSize), nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.DownloadStream(ctx, "bench", "blob", nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
