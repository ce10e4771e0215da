package fileupload_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/blob"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

const (
	suffix              = "outpost.test"
	apiV                = "?api-version=2023-05-01"
	blobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
)

type allowAll struct{}

func (allowAll) AuthorizeAction(context.Context, arm.Principal, string, string) error { return nil }

// fixture is the real storage control plane (SQLite, ARM with the storage
// and RBAC types), the real blob data plane behind TLS (virtual-hosted and
// path-style), the real identity stack, an embedded JetStream and the
// service under test.
type fixture struct {
	arm      *httptest.Server
	blobSrv  *httptest.Server
	pathSrv  *httptest.Server
	sub      string
	issuer   *identity.Issuer
	idDir    *identity.Directory
	bus      *bus.Bus
	svc      *fileupload.Service
	tokens   *hubTokens
	egress   *testEgress
	hubCount int
}

// hubTokens is the in-process token path (App.ManagedIdentityToken): it
// issues tokens for the managed identity principals of resources.
type hubTokens struct {
	issuer *identity.Issuer
	dir    *identity.Directory

	mu         sync.Mutex
	principals map[string]store.Principal // resource id (system) or user-assigned id
	calls      int
}

func (h *hubTokens) ManagedIdentityToken(_ context.Context, resourceID, userAssignedID, resource string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	key := resourceID
	if userAssignedID != "" {
		key = userAssignedID
	}
	p, ok := h.principals[strings.ToLower(key)]
	if !ok {
		return "", fmt.Errorf("%s has no such managed identity", resourceID)
	}
	tok, err := h.issuer.Issue(p, resource, "2")
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
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

func dialTo(srv *httptest.Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	addr := srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: tb.TempDir() + "/db"}, log)
	if err != nil {
		tb.Fatal(err)
	}
	inst, err := arm.EnsureInstallation(ctx, st, "", "")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{sub: inst.SubscriptionID}
	keys := identity.NewKeyRing(st.Settings(), time.Hour, 2*time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	f.issuer = identity.NewIssuer(inst.TenantID, keys, time.Hour, 0, time.Now)
	validator := identity.NewValidator(inst.TenantID, keys, st.Principals(), time.Minute, time.Now)
	f.idDir = identity.NewDirectory(st.Principals(), time.Now)
	engine := rbac.NewEngine(st.Resources(), 0, time.Now, log)
	if err := engine.ReloadNow(ctx); err != nil {
		tb.Fatal(err)
	}
	manager := msi.NewManager(st.Resources(), st.Principals(), f.idDir, allowAll{}, inst.TenantID)
	disk, err := blob.NewDisk(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	dirs := storage.NewDirectory(st.Resources())
	accounts := storage.NewAccounts(storage.Config{
		DNSSuffix: suffix, Identities: manager, Resources: st.Resources(), Blobs: disk, Directory: dirs,
	})
	reg, err := arm.NewRegistry(accounts, storage.NewBlobServices(st.Resources()),
		storage.NewContainerType(st.Resources(), disk, nil),
		rbac.NewRoleAssignments(engine, st.Principals(), inst.TenantID, time.Now), rbac.NewRoleDefinitions(engine, time.Now))
	if err != nil {
		tb.Fatal(err)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log})
	runner := arm.NewOperationRunner(svc, log)
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: log}).Mount(paths)
	f.arm = httptest.NewTLSServer(paths)
	h := blob.New(blob.Config{
		DNSSuffix: suffix, Accounts: dirs, Containers: storage.NewContainers(st.Resources(), nil), Blobs: disk,
		Access: access.New(validator, engine, log), AuthorityURL: "https://login." + suffix, TenantID: inst.TenantID, Log: log,
	})
	f.blobSrv = httptest.NewTLSServer(h)
	f.pathSrv = httptest.NewTLSServer(h.PathStyle())
	f.egress = &testEgress{virtual: dialTo(f.blobSrv), path: dialTo(f.pathSrv)}

	f.bus, err = bus.Open(ctx, bus.Config{StoreDir: tb.TempDir(), StreamPrefix: "test"}, log)
	if err != nil {
		tb.Fatal(err)
	}
	f.tokens = &hubTokens{issuer: f.issuer, dir: f.idDir, principals: map[string]store.Principal{}}
	f.svc, err = fileupload.New(fileupload.Config{Bus: f.bus, Egress: f.egress, Tokens: f.tokens, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.blobSrv.Close()
		f.pathSrv.Close()
		f.arm.Close()
		_ = f.bus.Close(context.Background())
		cancel()
		<-done
		st.Close()
	})
	f.call(tb, "PUT", "/subscriptions/"+f.sub+"/resourcegroups/rg?api-version=2021-04-01", `{"location":"westus"}`, 201)
	return f
}

func (f *fixture) accountID(name string) string {
	return "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/" + name
}

func (f *fixture) call(tb testing.TB, method, path, body string, want int) map[string]any {
	tb.Helper()
	req, _ := http.NewRequest(method, f.arm.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := f.arm.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
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
	f.tokens.mu.Lock()
	f.tokens.principals[strings.ToLower(h.ResourceID)] = p
	f.tokens.mu.Unlock()
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
