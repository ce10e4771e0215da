package blob_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/arm/armtest"
)

// TestPathStyle drives the path-style handler (https://host:port/{account}/…)
// the way clients address Azurite.
func TestPathStyle(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct7", "")
	cred, _ := azblob.NewSharedKeyCredential("acct7", key)
	c, err := azblob.NewClientWithSharedKeyCredential("https://127.0.0.1:1/acct7/", cred, &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: armtest.DialTo(f.path), Retry: policy.RetryOptions{MaxRetries: -1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "paths", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadBuffer(ctx, "paths", "a/b c.txt", []byte("path style"), nil); err != nil {
		t.Fatal(err)
	}
	if b := download(t, c, "paths", "a/b c.txt", nil); string(b) != "path style" {
		t.Fatalf("download = %q", b)
	}
	pager := c.NewListContainersPager(nil)
	page, err := pager.NextPage(ctx)
	if err != nil || len(page.ContainerItems) != 1 || *page.ContainerItems[0].Name != "paths" {
		t.Fatalf("list containers: %v", err)
	}
}
