package blob_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/arm"
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

const suffix = "outpost.test"

type allowAll struct{}

func (allowAll) AuthorizeAction(context.Context, arm.Principal, string, string) error { return nil }

// fixture is the real control plane (SQLite, ARM service and handler with
// the storage and RBAC types) and the blob data plane, each on its own TLS
// server, with the real identity stack (keys, issuer, validator, RBAC).
type fixture struct {
	arm     *httptest.Server
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
	f := &fixture{st: st, sub: inst.SubscriptionID, tenant: inst.TenantID, root: tb.TempDir()}
	keys := identity.NewKeyRing(st.Settings(), time.Hour, 2*time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	f.issuer = identity.NewIssuer(inst.TenantID, keys, time.Hour, 0, time.Now)
	validator := identity.NewValidator(inst.TenantID, keys, st.Principals(), time.Minute, time.Now)
	f.idDir = identity.NewDirectory(st.Principals(), time.Now)
	f.engine = rbac.NewEngine(st.Resources(), 0, time.Now, log)
	if err := f.engine.ReloadNow(ctx); err != nil {
		tb.Fatal(err)
	}
	manager := msi.NewManager(st.Resources(), st.Principals(), f.idDir, allowAll{}, inst.TenantID)

	if f.disk, err = blob.NewDisk(f.root); err != nil {
		tb.Fatal(err)
	}
	f.dirs = storage.NewDirectory(st.Resources())
	accounts := storage.NewAccounts(storage.Config{
		DNSSuffix: suffix, Identities: manager, Resources: st.Resources(), Blobs: f.disk, Directory: f.dirs,
	})
	reg, err := arm.NewRegistry(accounts, storage.NewBlobServices(st.Resources()),
		storage.NewContainerType(st.Resources(), f.disk, nil),
		rbac.NewRoleAssignments(f.engine, st.Principals(), inst.TenantID, time.Now), rbac.NewRoleDefinitions(f.engine, time.Now))
	if err != nil {
		tb.Fatal(err)
	}
	for _, pa := range accounts.ProviderActions() {
		reg.AddProviderAction(pa)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log})
	runner := arm.NewOperationRunner(svc, log)
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: log}).Mount(paths)
	f.arm = httptest.NewTLSServer(paths)

	h := blob.New(blob.Config{
		DNSSuffix: suffix, Accounts: f.dirs, Containers: storage.NewContainers(st.Resources(), nil), Blobs: f.disk,
		Access: access.New(validator, f.engine, log), AuthorityURL: "https://login." + suffix, TenantID: inst.TenantID, Log: log,
	})
	f.blobSrv = httptest.NewTLSServer(h)
	f.path = httptest.NewTLSServer(h.PathStyle())
	tb.Cleanup(func() {
		f.blobSrv.Close()
		f.path.Close()
		f.arm.Close()
		cancel()
		<-done
		st.Close()
	})
	f.call(tb, "PUT", "/subscriptions/"+f.sub+"/resourcegroups/rg?api-version=2021-04-01", `{"location":"westus"}`, 201)
	return f
}

const apiV = "?api-version=2023-05-01"

func (f *fixture) accountID(name string) string {
	return "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/" + name
}

// call sends an ARM request and checks the status.
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

// transport sends every request to srv whatever the host name, verifying
// srv's certificate (httptest's certificate names example.com).
func transport(srv *httptest.Server) *http.Client {
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

func (f *fixture) clientOptions() *azblob.ClientOptions {
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: transport(f.blobSrv),
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
	resp, err := transport(f.blobSrv).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
