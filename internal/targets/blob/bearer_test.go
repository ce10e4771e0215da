package blob_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// staticToken is a TokenCredential handing out one minted token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// principal creates a service principal and a storage token for it;
// role, when not empty, is assigned at the account.
func (f *fixture) principal(t *testing.T, name, account, role string) (string, staticToken) {
	t.Helper()
	p, _, err := f.idDir.CreateServicePrincipal(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		f.call(t, "PUT", f.accountID(account)+"/providers/Microsoft.Authorization/roleAssignments/"+uuidFor(name)+"?api-version=2022-04-01",
			`{"properties":{"roleDefinitionId":"/subscriptions/`+f.sub+`/providers/Microsoft.Authorization/roleDefinitions/`+role+`","principalId":"`+p.ObjectID+`","principalType":"ServicePrincipal"}}`, 201)
	}
	tok, err := f.issuer.Issue(p, "https://storage.azure.com", "1")
	if err != nil {
		t.Fatal(err)
	}
	return p.ObjectID, staticToken(tok.AccessToken)
}

func uuidFor(s string) string {
	b := []byte("00000000-0000-4000-8000-000000000000")
	for i := 0; i < len(s) && i < 8; i++ {
		b[i] = "0123456789abcdef"[s[i]%16]
	}
	return string(b)
}

const blobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"

// TestBearerAndUserDelegationSAS runs the Bearer branch with the real
// identity stack (keys, issuer, validator, RBAC engine): a Storage Blob
// Data Contributor writes, reads and gets a user delegation key whose SAS
// azblob signs; a principal without a data role is refused.
func TestBearerAndUserDelegationSAS(t *testing.T) {
	f := newFixture(t)
	f.account(t, "acct6", "")
	ctx := context.Background()
	_, tok := f.principal(t, "writer", "acct6", blobDataContributor)
	c, err := azblob.NewClient(serviceURL("acct6"), tok, f.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(ctx, "tokens", nil); err != nil {
		t.Fatalf("create container with a token: %v", err)
	}
	if _, err := c.UploadBuffer(ctx, "tokens", "a.txt", []byte("via token"), nil); err != nil {
		t.Fatal(err)
	}
	if b := download(t, c, "tokens", "a.txt", nil); string(b) != "via token" {
		t.Fatalf("download = %q", b)
	}

	now := time.Now().UTC()
	udc, err := c.ServiceClient().GetUserDelegationCredential(ctx, service.KeyInfo{
		Start: to.Ptr(now.Add(-time.Minute).Format(sas.TimeFormat)), Expiry: to.Ptr(now.Add(time.Hour).Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		t.Fatalf("user delegation key: %v", err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPS, ExpiryTime: now.Add(time.Hour), ContainerName: "tokens",
		Permissions: to.Ptr(sas.ContainerPermissions{Read: true, Write: true, Create: true, List: true}).String()}.SignWithUserDelegation(udc)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := azblob.NewClientWithNoCredential(serviceURL("acct6")+"?"+q.Encode(), f.clientOptions())
	if _, err := sc.UploadBuffer(ctx, "tokens", "b.txt", []byte("via udk"), nil); err != nil {
		t.Fatalf("upload with a user delegation SAS: %v", err)
	}
	if b := download(t, sc, "tokens", "b.txt", nil); string(b) != "via udk" {
		t.Fatalf("download with user delegation SAS = %q", b)
	}
	if _, err := sc.DeleteBlob(ctx, "tokens", "b.txt", nil); !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		t.Fatalf("delete without d in the SAS: %v", err)
	}

	// Reader is a management role: it grants no data access.
	_, rtok := f.principal(t, "reader", "acct6", "acdd72a7-3385-48ef-bd42-f606fba81ae7")
	rc, _ := azblob.NewClient(serviceURL("acct6"), rtok, f.clientOptions())
	if _, err := rc.UploadBuffer(ctx, "tokens", "c.txt", []byte("x"), nil); !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		t.Fatalf("write as Reader: %v", err)
	}
	// A garbage token is refused with AuthenticationFailed.
	bc, _ := azblob.NewClient(serviceURL("acct6"), staticToken("not.a.jwt"), f.clientOptions())
	if _, err := bc.CreateContainer(ctx, "nope", nil); !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
		t.Fatalf("garbage token: %v", err)
	}
}
