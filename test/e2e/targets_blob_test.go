package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// spCredential is azidentity's ClientSecretCredential for a service
// principal, pointed at Outpost's issuer.
func spCredential(t *testing.T, s *testserver.Server, clientID, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(s.App.Installation().TenantID, clientID, secret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloudConfig(s), Transport: s.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func blobOptions(s *testserver.Server) *azblob.ClientOptions {
	return &azblob.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: s.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1},
	}}
}

// exerciseBlobs is the same round trip for every credential: create a
// container, upload 1 KiB (Put Blob) and 64 MiB (in blocks), list,
// download and compare, delete.
func exerciseBlobs(t *testing.T, c *azblob.Client) {
	t.Helper()
	ctx := context.Background()
	cont := uniqueName("c", 20)
	if _, err := c.CreateContainer(ctx, cont, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	small := make([]byte, 1024)
	big := make([]byte, 64<<20)
	rand.Read(small)
	rand.Read(big)
	if _, err := c.UploadBuffer(ctx, cont, "dir/small.bin", small, nil); err != nil {
		t.Fatalf("upload 1 KiB: %v", err)
	}
	// Put Block ×8 (8 MiB each, four at a time) and Put Block List.
	// UploadBuffer would send anything up to 256 MiB as one Put Blob
	// whatever its BlockSize; UploadStream always stages blocks.
	if _, err := c.UploadStream(ctx, cont, "dir/big.bin", bytes.NewReader(big), &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4}); err != nil {
		t.Fatalf("upload 64 MiB: %v", err)
	}
	var names []string
	pager := c.NewListBlobsFlatPager(cont, &azblob.ListBlobsFlatOptions{Prefix: ptr("dir/")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	if strings.Join(names, ",") != "dir/big.bin,dir/small.bin" {
		t.Fatalf("listed %v", names)
	}
	for name, want := range map[string][]byte{"dir/small.bin": small, "dir/big.bin": big} {
		resp, err := c.DownloadStream(ctx, cont, name, nil)
		if err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(h.Sum(nil), sum(want)) {
			t.Fatalf("download %s: %v, content differs", name, err)
		}
	}
	if _, err := c.DeleteBlob(ctx, cont, "dir/small.bin", nil); err != nil {
		t.Fatalf("delete blob: %v", err)
	}
	if _, err := c.DeleteContainer(ctx, cont, nil); err != nil {
		t.Fatalf("delete container: %v", err)
	}
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func ptr[T any](v T) *T { return &v }

// TestBlobGoSDK drives Outpost's blob service with the unmodified Go azblob
// client: Bearer tokens from Outpost's issuer (Storage Blob Data Contributor
// on the account), Shared Key, and a service SAS; a principal without the
// role and a token for another service are refused as Azure refuses them.
func TestBlobGoSDK(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		acct := createStorageAccount(t, s, "rg-blob-sdk", "", "")
		ctx := context.Background()

		t.Run("bearer", func(t *testing.T) {
			oid, clientID, secret := newServicePrincipal(t, s, "blob-writer")
			assignRole(t, s, oid, storageBlobDataContributor, acct.ID)
			c, err := azblob.NewClient(acct.BlobEndpoint, spCredential(t, s, clientID, secret), blobOptions(s))
			if err != nil {
				t.Fatal(err)
			}
			exerciseBlobs(t, c)
		})
		t.Run("sharedkey", func(t *testing.T) {
			cred, err := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
			if err != nil {
				t.Fatal(err)
			}
			c, err := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
			if err != nil {
				t.Fatal(err)
			}
			exerciseBlobs(t, c)
		})
		t.Run("sas", func(t *testing.T) {
			cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
			q, err := sas.AccountSignatureValues{
				Protocol: sas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour),
				Permissions:   ptr(sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Create: true, Add: true}).String(),
				ResourceTypes: ptr(sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
			}.SignWithSharedKey(cred)
			if err != nil {
				t.Fatal(err)
			}
			c, err := azblob.NewClientWithNoCredential(acct.BlobEndpoint+"?"+q.Encode(), blobOptions(s))
			if err != nil {
				t.Fatal(err)
			}
			exerciseBlobs(t, c)
		})
		t.Run("refusals", func(t *testing.T) {
			keyCred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
			admin, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, keyCred, blobOptions(s))
			if _, err := admin.CreateContainer(ctx, "guarded", nil); err != nil {
				t.Fatal(err)
			}
			// A valid token without a role: 403 AuthorizationPermissionMismatch.
			_, clientID, secret := newServicePrincipal(t, s, "blob-nobody")
			c, _ := azblob.NewClient(acct.BlobEndpoint, spCredential(t, s, clientID, secret), blobOptions(s))
			_, err := c.UploadBuffer(ctx, "guarded", "x", []byte("x"), nil)
			if !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) || statusOf(err) != 403 {
				t.Fatalf("upload without a role: %v", err)
			}
			// A token for Event Hubs presented to storage: authentication fails.
			tok := spToken(t, s, clientID, secret, eventHubsResource)
			req, _ := http.NewRequest("GET", acct.BlobEndpoint+"guarded?restype=container", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("x-ms-version", "2023-11-03")
			resp, err := s.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" {
				t.Fatalf("event hubs token on blob: %d %s", resp.StatusCode, resp.Header.Get("x-ms-error-code"))
			}
			// A read-only container SAS cannot write.
			ro, err := sas.BlobSignatureValues{
				Protocol: sas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour), ContainerName: "guarded",
				Permissions: ptr(sas.ContainerPermissions{Read: true, List: true}).String(),
			}.SignWithSharedKey(keyCred)
			if err != nil {
				t.Fatal(err)
			}
			cc, _ := container.NewClientWithNoCredential(acct.BlobEndpoint+"guarded?"+ro.Encode(), &container.ClientOptions{ClientOptions: blobOptions(s).ClientOptions})
			_, err = cc.NewBlockBlobClient("y").UploadBuffer(ctx, []byte("y"), nil)
			if !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
				t.Fatalf("write with a read-only SAS: %v", err)
			}
			if _, err := cc.NewBlobClient("y").GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
				t.Fatalf("the refused write left a blob: %v", err)
			}
		})
	})
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// TestBlobSuiteSideBySide runs the npm @azure/storage-blob suite against
// Outpost — Shared Key on the virtual-hosted name, SAS on the path-style
// port, Bearer from Outpost's issuer — and against Azurite (Shared Key), in
// one test, so Outpost is held to the reference emulator's behaviour.
func TestBlobSuiteSideBySide(t *testing.T) {
	t.Run("azurite", func(t *testing.T) {
		endpoint, caFile := startAzurite(t)
		runBlobSuite(t, map[string]string{
			"BLOB_ENDPOINT": endpoint, "BLOB_AUTH": "sharedkey", "BLOB_ACCOUNT": azuriteAccount,
			"BLOB_KEY": azuriteKey, "BLOB_PEER": "azurite", "NODE_EXTRA_CA_CERTS": caFile,
		})
	})
	t.Run("outpost", func(t *testing.T) {
		s := testserver.Start(t)
		acct := createStorageAccount(t, s, "rg-blob-npm", "", "")
		oid, clientID, secret := newServicePrincipal(t, s, "blob-npm")
		assignRole(t, s, oid, storageBlobDataContributor, acct.ID)
		env := s.Env()
		base := map[string]string{
			"BLOB_ACCOUNT": acct.Name, "BLOB_KEY": acct.Key, "NODE_EXTRA_CA_CERTS": s.App.CAFile(),
			"AZURE_TENANT_ID": env["AZURE_TENANT_ID"], "AZURE_AUTHORITY_HOST": env["AZURE_AUTHORITY_HOST"],
			"AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_SECRET": secret,
		}
		pathStyle := "https://" + s.App.BlobAddr().String() + "/" + acct.Name
		for _, mode := range []struct{ auth, endpoint string }{
			{"sharedkey", acct.BlobEndpoint}, {"sas", pathStyle}, {"bearer", acct.BlobEndpoint},
		} {
			t.Run(mode.auth, func(t *testing.T) {
				vars := map[string]string{"BLOB_AUTH": mode.auth, "BLOB_ENDPOINT": mode.endpoint}
				for k, v := range base {
					vars[k] = v
				}
				runBlobSuite(t, vars)
			})
		}
	})
}
