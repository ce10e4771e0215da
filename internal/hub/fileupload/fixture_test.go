package fileupload_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/blob"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

const (
	suffix              = "outpost.test"
	apiV                = "?api-version=2023-05-01"
	blobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
)

// fixture is the real storage control plane (armtest with the storage and
// RBAC types), the real blob data plane behind TLS (virtual-hosted and
// path-style), the real identity stack, an embedded JetStream and the
// service under test.
type fixture struct {
	arm      *armtest.Server
	blobSrv  *httptest.Server
	pathSrv  *httptest.Server
	sub      string
	issuer   *identity.Issuer
	idDir    *identity.Directory
	bus      *bus.Bus
	svc      *fileupload.Service
	tokens   *armtest.Tokens
	egress   *testEgress
	hubCount int
}

// testEgress sends {account}.blob.{suffix} to the virtual-hosted server and
// everything else (path-style, 127.0.0.1:port) to the path-style server,
// verifying their certificates, as the egress dials Outpost's own names at
// its own listeners.
type testEgress struct {
	virtual, path *http.Client
}

func (e *testEgress) Do(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Hostname(), ".blob."+suffix) {
		return e.virtual.Do(r)
	}
	return e.path.Do(r)
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	s := armtest.New(tb)
	st := s.Store
	f := &fixture{arm: s, sub: s.SubscriptionID(), issuer: s.Identity.Issuer, idDir: s.Identity.Directory}
	disk, err := blob.NewDisk(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	dirs := storage.NewDirectory(st.Resources())
	accounts := storage.NewAccounts(storage.Config{
		DNSSuffix: suffix, Identities: s.Identities, Resources: st.Resources(), Blobs: disk, Directory: dirs,
	})
	s.Serve(tb, append([]arm.ResourceType{accounts, storage.NewBlobServices(st.Resources()),
		storage.NewContainerType(st.Resources(), disk, nil)}, s.RoleTypes()...))
	h := blob.New(blob.Config{
		DNSSuffix: suffix, Accounts: dirs, Containers: storage.NewContainers(st.Resources(), nil), Blobs: disk,
		Access: s.Identity.Checker, AuthorityURL: "https://login." + suffix, TenantID: s.TenantID(), Log: s.Log,
	})
	f.blobSrv = httptest.NewTLSServer(h)
	f.pathSrv = httptest.NewTLSServer(h.PathStyle())
	f.egress = &testEgress{virtual: armtest.DialTo(f.blobSrv), path: armtest.DialTo(f.pathSrv)}

	f.bus, err = bus.Open(context.Background(), bus.Config{StoreDir: tb.TempDir(), StreamPrefix: "test"}, s.Log)
	if err != nil {
		tb.Fatal(err)
	}
	f.tokens = armtest.NewTokens(f.issuer)
	f.svc, err = fileupload.New(fileupload.Config{Bus: f.bus, Egress: f.egress, Tokens: f.tokens, Log: s.Log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.blobSrv.Close()
		f.pathSrv.Close()
		_ = f.bus.Close(context.Background())
	})
	return f
}

func (f *fixture) accountID(name string) string {
	return f.arm.GroupID("rg") + "/providers/Microsoft.Storage/storageAccounts/" + name
}

func (f *fixture) call(tb testing.TB, method, path, body string, want int) map[string]any {
	tb.Helper()
	return f.arm.Call(tb, method, path, body, want)
}

// account creates an account with a container and returns its key1.
func (f *fixture) account(tb testing.TB, name, props, container string) string {
	tb.Helper()
	if props == "" {
		props = "{}"
	}
	f.call(tb, "PUT", f.accountID(name)+apiV, `{"location":"westus","sku":{"name":"Standard_LRS"},"kind":"StorageV2","properties":`+props+`}`, 200)
	if container != "" {
		f.call(tb, "PUT", f.accountID(name)+"/blobServices/default/containers/"+container+apiV, `{}`, 201)
	}
	keys := f.call(tb, "POST", f.accountID(name)+"/listKeys"+apiV, "", 200)
	return keys["keys"].([]any)[0].(map[string]any)["value"].(string)
}

// hub returns a hub with a fresh name and fresh queue, configured by mutate.
func (f *fixture) hub(tb testing.TB, mutate func(*hub.FileUploadSettings)) hub.Hub {
	tb.Helper()
	f.hubCount++
	name := fmt.Sprintf("hub%d", f.hubCount)
	h := hub.Hub{Name: name, ResourceID: "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/" + name,
		FileUpload: hub.FileUploadSettings{SASTTL: time.Hour, Notifications: true, LockDuration: time.Minute, TTL: time.Hour, MaxDeliveryCount: 10}}
	if mutate != nil {
		mutate(&h.FileUpload)
	}
	if err := f.svc.EnsureHub(context.Background(), name); err != nil {
		tb.Fatal(err)
	}
	return h
}

// systemIdentity creates the hub's system-assigned identity; role, when
// not empty, is assigned to it at the account.
func (f *fixture) systemIdentity(tb testing.TB, h hub.Hub, account, role string) store.Principal {
	tb.Helper()
	p, err := f.idDir.CreateManagedIdentity(context.Background(), h.ResourceID, h.Name)
	if err != nil {
		tb.Fatal(err)
	}
	f.tokens.Add(h.ResourceID, p)
	if role != "" {
		f.assign(tb, p, account, role)
	}
	return p
}

func (f *fixture) assign(tb testing.TB, p store.Principal, account, role string) {
	tb.Helper()
	f.call(tb, "PUT", f.accountID(account)+"/providers/Microsoft.Authorization/roleAssignments/"+uuidFor(p.ObjectID)+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+f.sub+`/providers/Microsoft.Authorization/roleDefinitions/`+role+`","principalId":"`+p.ObjectID+`","principalType":"ServicePrincipal"}}`, 201)
}

func uuidFor(s string) string {
	b := []byte("00000000-0000-4000-8000-000000000000")
	for i := 0; i < len(s) && i < 8; i++ {
		b[i] = "0123456789abcdef"[s[i]%16]
	}
	return string(b)
}

// deviceUpload uploads data exactly as the Node device SDK does: an
// anonymous block blob client on https://{hostName}/{container}/{blob}{sas},
// staged blocks and a block list.
func (f *fixture) deviceUpload(tb testing.TB, r fileupload.StartResult, data []byte) error {
	tb.Helper()
	u := "https://" + r.HostName + "/" + r.ContainerName + "/" + r.BlobName + r.SASToken
	c, err := blockblob.NewClientWithNoCredential(u, &blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: f.egress, Retry: policy.RetryOptions{MaxRetries: -1},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	_, err = c.UploadStream(context.Background(), strings.NewReader(string(data)), &blockblob.UploadStreamOptions{BlockSize: 4 << 20})
	return err
}
