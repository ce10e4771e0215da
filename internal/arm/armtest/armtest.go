package armtest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
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
	runner := arm.NewOperationRunner(svc, s.Log)
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
