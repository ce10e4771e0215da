package armtest

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

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/targets/access/accesstest"
)

// operatorAuthorization is what every ARM request carries: the handler's
// default authenticator wants a bearer token and the default authorizer
// allows everything.
const operatorAuthorization = "Bearer t"

// groupAPIVersion is the resource groups api-version az uses.
const groupAPIVersion = "?api-version=2021-04-01"

// Server is a real ARM control plane for tests.
type Server struct {
	Store        store.Store
	Installation arm.Installation
	// Identity is the identity stack on Store; its tenant is the
	// installation's.
	Identity *accesstest.Fixture
	// Identities applies the identity blocks of the resource types; anyone
	// may attach any user-assigned identity.
	Identities *msi.Manager
	Log        *slog.Logger

	// URL is the ARM handler's https://127.0.0.1:port, set by Serve.
	URL string
	srv *httptest.Server
}

// Option adjusts New.
type Option func(*Server)

// WithLog logs the store and ARM service to log instead of discarding.
func WithLog(log *slog.Logger) Option { return func(s *Server) { s.Log = log } }

// New opens a SQLite store in t.TempDir(), creates the installation (with
// accesstest's tenant) and builds the identity stack and the identity
// manager. Serve starts the ARM handler.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{Log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, s.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.Store = st
	if s.Installation, err = arm.EnsureInstallation(ctx, st, accesstest.TenantID, ""); err != nil {
		t.Fatal(err)
	}
	s.Identity = accesstest.New(t, st)
	s.Identities = msi.NewManager(st.Resources(), st.Principals(), s.Identity.Directory, allowAll{}, s.Installation.TenantID)
	return s
}

// allowAll lets every caller attach every user-assigned identity.
type allowAll struct{}

func (allowAll) AuthorizeAction(context.Context, arm.Principal, string, string) error { return nil }

// SubscriptionID is the installation's subscription.
func (s *Server) SubscriptionID() string { return s.Installation.SubscriptionID }

// TenantID is the installation's tenant.
func (s *Server) TenantID() string { return s.Installation.TenantID }

// RoleTypes are the Microsoft.Authorization roleAssignments and
// roleDefinitions types over the identity stack's RBAC engine.
func (s *Server) RoleTypes() []arm.ResourceType {
	return []arm.ResourceType{
		rbac.NewRoleAssignments(s.Identity.RBAC, s.Identity.Directory, s.TenantID(), time.Now),
		rbac.NewRoleDefinitions(s.Identity.RBAC, time.Now),
	}
}

// Serve registers types and actions, runs the operation runner and serves
// the ARM handler over TLS at s.URL; then it creates resource group "rg".
func (s *Server) Serve(t testing.TB, types []arm.ResourceType, actions ...arm.ProviderAction) {
	t.Helper()
	reg, err := arm.NewRegistry(types...)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		reg.AddProviderAction(a)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: s.Store, Registry: reg, Installation: s.Installation, Log: s.Log})
	runner := arm.NewOperationRunner(svc, "", s.Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: s.Log}).Mount(paths)
	s.srv = httptest.NewTLSServer(paths)
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.srv.Close()
		cancel()
		<-done
	})
	s.Group(t, "rg")
}

// GroupID is the ARM id of resource group name.
func (s *Server) GroupID(name string) string {
	return "/subscriptions/" + s.SubscriptionID() + "/resourceGroups/" + name
}

// Group creates resource group name.
func (s *Server) Group(t testing.TB, name string) {
	t.Helper()
	s.Call(t, "PUT", "/subscriptions/"+s.SubscriptionID()+"/resourcegroups/"+name+groupAPIVersion, `{"location":"westus"}`, http.StatusCreated)
}

// Do sends an ARM request as the operator to path (relative to s.URL, or an
// absolute https URL such as an Azure-AsyncOperation header) with header
// name/value pairs, and fails t unless the status is want. It returns the
// response and the decoded body (nil when not a JSON object).
func (s *Server) Do(t testing.TB, method, path, body string, want int, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	url := path
	if !strings.HasPrefix(path, "https://") {
		url = s.URL + path
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", operatorAuthorization)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// Call is Do for callers that need only the decoded body.
func (s *Server) Call(t testing.TB, method, path, body string, want int) map[string]any {
	t.Helper()
	_, m := s.Do(t, method, path, body, want)
	return m
}

// CallAndWait is Call that, when the request starts a long-running
// operation, also waits for it and fails t unless it succeeds.
func (s *Server) CallAndWait(t testing.TB, method, path, body string, want int) map[string]any {
	t.Helper()
	resp, m := s.Do(t, method, path, body, want)
	if async := resp.Header.Get("Azure-AsyncOperation"); async != "" {
		if st := s.Wait(t, async); st["status"] != "Succeeded" {
			t.Fatalf("operation %v", st)
		}
	}
	return m
}

// Wait polls an Azure-AsyncOperation URL until the operation is Succeeded,
// Failed or Canceled, failing t after 10 s; it returns the last status.
func (s *Server) Wait(t testing.TB, asyncURL string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := s.Call(t, "GET", asyncURL, "", http.StatusOK)
		switch st["status"] {
		case "Succeeded", "Failed", "Canceled":
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("operation did not finish")
	return nil
}

// Tokens is the in-process managed identity token path the hub's egress
// uses (App.ManagedIdentityToken): it issues real tokens from the fixture's
// issuer for the principals registered with Add, and counts requests.
type Tokens struct {
	issuer *identity.Issuer

	mu         sync.Mutex
	principals map[string]store.Principal // by resource id (system-assigned) or user-assigned id
	calls      int
}

// NewTokens returns a token source issuing with issuer.
func NewTokens(issuer *identity.Issuer) *Tokens {
	return &Tokens{issuer: issuer, principals: map[string]store.Principal{}}
}

// Add registers the principal of a managed identity: key is the resource id
// of a system-assigned identity or the id of a user-assigned one.
func (t *Tokens) Add(key string, p store.Principal) {
	t.mu.Lock()
	t.principals[strings.ToLower(key)] = p
	t.mu.Unlock()
}

// Principal returns a registered principal.
func (t *Tokens) Principal(key string) (store.Principal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.principals[strings.ToLower(key)]
	return p, ok
}

// Calls is how many tokens were asked for.
func (t *Tokens) Calls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

// ManagedIdentityToken issues a token for resource's identity.
func (t *Tokens) ManagedIdentityToken(_ context.Context, resourceID, userAssignedID, resource string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	key := resourceID
	if userAssignedID != "" {
		key = userAssignedID
	}
	p, ok := t.principals[strings.ToLower(key)]
	if !ok {
		return "", fmt.Errorf("%s has no managed identity %q", resourceID, userAssignedID)
	}
	tok, err := t.issuer.Issue(p, resource, "2")
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// DialTo is an HTTP client that sends every request to srv, verifying its
// test certificate, whatever host the URL names — as the egress client dials
// Outpost's own names at its own listeners.
func DialTo(srv *httptest.Server) *http.Client {
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
