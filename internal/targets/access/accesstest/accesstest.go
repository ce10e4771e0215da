package accesstest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/targets/access"
)

// TenantID is the fixture's tenant.
const TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// Fixture is a real identity stack for tests.
type Fixture struct {
	Store     store.Store
	Checker   *access.Checker
	Issuer    *identity.Issuer
	Directory *identity.Directory
	RBAC      *rbac.Engine
}

// New builds the stack on a fresh SQLite store in t.TempDir(). Pass a store
// to share one with the code under test (nil opens a new one).
func New(t testing.TB, st store.Store) *Fixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if st == nil {
		var err error
		st, err = sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	}
	keys := identity.NewKeyRing(st.Settings(), 0, time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &Fixture{
		Store:     st,
		Issuer:    identity.NewIssuer(TenantID, keys, time.Hour, 0, time.Now),
		Directory: identity.NewDirectory(st.Principals(), time.Now),
		RBAC:      rbac.NewEngine(st.Resources(), 0, time.Now, log),
	}
	validator := identity.NewValidator(TenantID, keys, st.Principals(), 5*time.Minute, time.Now)
	f.Checker = access.New(validator, f.RBAC, log)
	if err := f.RBAC.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// ServicePrincipal creates a service principal.
func (f *Fixture) ServicePrincipal(t testing.TB, name string) store.Principal {
	t.Helper()
	p, _, err := f.Directory.CreateServicePrincipal(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ManagedIdentity creates the principal of a managed identity belonging to
// resourceID (a hub's id for a system-assigned one, a
// userAssignedIdentities id for a user-assigned one).
func (f *Fixture) ManagedIdentity(t testing.TB, resourceID string) store.Principal {
	t.Helper()
	p, err := f.Directory.CreateManagedIdentity(context.Background(), resourceID, filepath.Base(resourceID))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Token mints an access token for p and resource (e.g.
// "https://storage.azure.com").
func (f *Fixture) Token(t testing.TB, p store.Principal, resource string) string {
	t.Helper()
	tok, err := f.Issuer.Issue(p, resource, "1")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// Assign grants the built-in role (a GUID from internal/identity/authz) to
// the principal at scope and makes it effective at once.
func (f *Fixture) Assign(t testing.TB, principalID, roleGUID, scope string) {
	t.Helper()
	ctx := context.Background()
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/" + roleGUID,
		"principalId":      principalID, "principalType": "ServicePrincipal", "scope": scope,
	}})
	if _, _, err := f.Store.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Authorization/roleAssignments", Name: filepath.Base(id), ParentID: scope, Body: body}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.RBAC.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
}
