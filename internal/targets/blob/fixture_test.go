package blob_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/blob"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

const suffix = "outpost.test"

// fixture is the real control plane (armtest with the storage and RBAC
// types) and the blob data plane, each on its own TLS server, with the real
// identity stack (keys, issuer, validator, RBAC).
type fixture struct {
	arm     *armtest.Server
	blobSrv *httptest.Server
	path    *httptest.Server
	st      store.Store
	disk    *blob.Disk
	dirs    *storage.Directory
	sub     string
	tenant  string
	issuer  *identity.Issuer
	idDir   *identity.Directory
	engine  *rbac.Engine
	root    string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	s := armtest.New(tb)
	st := s.Store
	f := &fixture{arm: s, st: st, sub: s.SubscriptionID(), tenant: s.TenantID(), root: tb.TempDir(),
		issuer: s.Identity.Issuer, idDir: s.Identity.Directory, engine: s.Identity.RBAC}
	var err error
	if f.disk, err = blob.NewDisk(f.root); err != nil {
		tb.Fatal(err)
	}
	f.dirs = storage.NewDirectory(st.Resources())
	accounts := storage.NewAccounts(storage.Config{
		DNSSuffix: suffix, Identities: s.Identities, Resources: st.Resources(), Blobs: f.disk, Directory: f.dirs,
	})
	types := append([]arm.ResourceType{accounts, storage.NewBlobServices(st.Resources()),
		storage.NewContainerType(st.Resources(), f.disk, nil)}, s.RoleTypes()...)
	s.Serve(tb, types, accounts.ProviderActions()...)

	h := blob.New(blob.Config{
		DNSSuffix: suffix, Accounts: f.dirs, Containers: storage.NewContainers(st.Resources(), nil), Blobs: f.disk,
		Access: s.Identity.Checker, AuthorityURL: "https://login." + suffix, TenantID: f.tenant, Log: s.Log,
	})
	f.blobSrv = httptest.NewTLSServer(h)
	f.path = httptest.NewTLSServer(h.PathStyle())
	tb.Cleanup(func() {
		f.blobSrv.Close()
		f.path.Close()
	})
	return f
}

const apiV = "?api-version=2023-05-01"

func (f *fixture) accountID(name string) string {
	return f.arm.GroupID("rg") + "/providers/Microsoft.Storage/storageAccounts/" + name
}

// call sends an ARM request and checks the status.
func (f *fixture) call(tb testing.TB, method, path, body string, want int) map[string]any {
	tb.Helper()
	return f.arm.Call(tb, method, path, body, want)
}

// account creates an account through ARM and returns its key1.
func (f *fixture) account(tb testing.TB, name, props string) string {
	tb.Helper()
	if props == "" {
		props = "{}"
	}
	f.call(tb, "PUT", f.accountID(name)+apiV, `{"location":"westus","sku":{"name":"Standard_LRS"},"kind":"StorageV2","properties":`+props+`}`, 200)
	keys := f.call(tb, "POST", f.accountID(name)+"/listKeys"+apiV, "", 200)
	return keys["keys"].([]any)[0].(map[string]any)["value"].(string)
}

func (f *fixture) clientOptions() *azblob.ClientOptions {
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: armtest.DialTo(f.blobSrv),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func serviceURL(account string) string { return "https://" + account + ".blob." + suffix + "/" }

func (f *fixture) sharedKeyClient(tb testing.TB, account, key string) *azblob.Client {
	tb.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(serviceURL(account), cred, f.clientOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// raw sends a plain request to the blob server.
func (f *fixture) raw(tb testing.TB, method, url string, body io.Reader, headers ...string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := armtest.DialTo(f.blobSrv).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
