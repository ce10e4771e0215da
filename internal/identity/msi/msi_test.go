package msi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

type engineAuthorizer struct{ e *rbac.Engine }

func (a engineAuthorizer) AuthorizeAction(_ context.Context, p arm.Principal, action, scope string) error {
	if d := a.e.Authorize(p.ObjectID, action, false, scope); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}

type fixture struct {
	st   store.Store
	dir  *identity.Directory
	rbac *rbac.Engine
	m    *msi.Manager
	sub  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, dir: identity.NewDirectory(st.Principals(), time.Now), sub: "00000000-0000-0000-0000-0000000000aa"}
	f.rbac = rbac.NewEngine(st.Resources(), 0, time.Now, log)
	f.dir.OnDelete(func(ctx context.Context, oid string) { _ = f.rbac.DeleteAssignmentsOf(ctx, oid) })
	f.m = msi.NewManager(st.Resources(), st.Principals(), f.dir, engineAuthorizer{f.rbac}, "tenant-1")
	return f
}

// userAssigned creates a user-assigned identity resource with its principal.
func (f *fixture) userAssigned(t *testing.T, name string) (string, store.Principal) {
	t.Helper()
	id := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	if _, _, err := f.st.Resources().Put(context.Background(), id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: msi.UserAssignedType, Name: name, Body: []byte(`{}`)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	p, err := f.dir.CreateManagedIdentity(context.Background(), id, name)
	if err != nil {
		t.Fatal(err)
	}
	return id, p
}

// assign gives principal a built-in role at scope, as a stored assignment.
func (f *fixture) assign(t *testing.T, principal, roleGUID, scope string) {
	t.Helper()
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + principal
	body := `{"properties":{"roleDefinitionId":"` + scope + `/providers/Microsoft.Authorization/roleDefinitions/` + roleGUID + `","principalId":"` + principal + `","scope":"` + scope + `"}}`
	if _, _, err := f.st.Resources().Put(context.Background(), id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: rbac.AssignmentType, Name: principal, Body: []byte(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.rbac.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func putRequest(t *testing.T, caller string, identityJSON string, current *store.Resource) arm.PutRequest {
	t.Helper()
	id, _ := arm.ParseResourceID("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1")
	body, err := arm.ParseDocument([]byte(`{"identity":` + identityJSON + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return arm.PutRequest{ID: id, Body: body, Current: current, Principal: arm.Principal{ObjectID: caller}}
}

const managedIdentityOperator = "f1a07417-d97a-45cb-824c-7a7467783830"

func TestPrepareValidatesAndChecksAssignPermission(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	uai, _ := f.userAssigned(t, "uai1")
	caller := "caller-1"

	b, err := f.m.Prepare(ctx, putRequest(t, caller, `{"type":"systemassigned"}`, nil))
	if err != nil || b.Type != msi.TypeSystemAssigned {
		t.Fatalf("Prepare(systemassigned) = %+v, %v", b, err)
	}
	for _, bad := range []struct{ json, code string }{
		{`{"type":"Everything"}`, "InvalidIdentityType"},
		{`{"type":"UserAssigned"}`, "InvalidIdentity"},
		{`{"type":"SystemAssigned","userAssignedIdentities":{"` + uai + `":{}}}`, "InvalidIdentity"},
		{`{"type":"UserAssigned","userAssignedIdentities":{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope":{}}}`, "InvalidUserAssignedIdentity"},
		{`{"type":"UserAssigned","userAssignedIdentities":{"` + uai + `":{}}}`, "LinkedAuthorizationFailed"},
	} {
		_, err := f.m.Prepare(ctx, putRequest(t, caller, bad.json, nil))
		if ae := arm.AsError(err); err == nil || ae.Code != bad.code {
			t.Errorf("Prepare(%s) = %v, want %s", bad.json, err, bad.code)
		} else if ae.Code == "LinkedAuthorizationFailed" && ae.Status != http.StatusForbidden {
			t.Errorf("LinkedAuthorizationFailed status = %d", ae.Status)
		}
	}
	// With Managed Identity Operator on the identity, attaching is allowed,
	// and the key is normalised to the stored id's spelling.
	f.assign(t, caller, managedIdentityOperator, uai)
	b, err = f.m.Prepare(ctx, putRequest(t, caller, `{"type":"SystemAssigned,UserAssigned","userAssignedIdentities":{"`+uai+`":{}}}`, nil))
	if err != nil || b.Type != msi.TypeSystemAssignedUserAssigned || b.UserAssignedIdentities[uai] == nil {
		t.Fatalf("Prepare with the assign permission = %+v, %v", b, err)
	}
	// An identity already attached needs no new permission check.
	cur := &store.Resource{Body: []byte(`{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uai + `":{}}}}`)}
	if _, err := f.m.Prepare(ctx, putRequest(t, "someone-else", `{"type":"UserAssigned","userAssignedIdentities":{"`+uai+`":{}}}`, cur)); err != nil {
		t.Errorf("re-PUT of an attached identity by another caller: %v", err)
	}
}

func TestSystemAssignedLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1"
	uai, uaiPrincipal := f.userAssigned(t, "uai1")

	on, err := f.m.Provision(ctx, res, msi.Block{Type: msi.TypeSystemAssignedUserAssigned, UserAssignedIdentities: map[string]*msi.UserAssignedRef{uai: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if on.PrincipalID == "" || on.TenantID != "tenant-1" || on.UserAssignedIdentities[uai].PrincipalID != uaiPrincipal.ObjectID || on.UserAssignedIdentities[uai].ClientID != uaiPrincipal.AppID {
		t.Fatalf("provisioned = %+v", on)
	}
	again, err := f.m.Provision(ctx, res, on)
	if err != nil || again.PrincipalID != on.PrincipalID {
		t.Fatalf("Provision is not idempotent: %+v, %v", again, err)
	}
	// The system identity gets a role; turning it off removes both.
	f.assign(t, on.PrincipalID, "ba92f5b4-2d11-453d-a403-e96b0029c9fe", "/subscriptions/s/resourceGroups/rg")
	if !f.rbac.Authorize(on.PrincipalID, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", true, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a").Allowed {
		t.Fatal("the role did not take")
	}
	off, err := f.m.Provision(ctx, res, msi.Block{Type: msi.TypeNone})
	if err != nil || off.PrincipalID != "" {
		t.Fatalf("turn off = %+v, %v", off, err)
	}
	if _, err := f.st.Principals().Get(ctx, on.PrincipalID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the system-assigned principal survived: %v", err)
	}
	if len(f.rbac.Evaluator().AssignmentsFor(on.PrincipalID)) != 0 {
		t.Error("the old principal's role assignments survived")
	}
	back, err := f.m.Provision(ctx, res, msi.Block{Type: msi.TypeSystemAssigned})
	if err != nil || back.PrincipalID == "" || back.PrincipalID == on.PrincipalID {
		t.Fatalf("turn on again = %+v, %v (old %s)", back, err, on.PrincipalID)
	}
	if err := f.m.Deprovision(ctx, res); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Principals().Get(ctx, back.PrincipalID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting the resource left its identity: %v", err)
	}
	// The user-assigned identity is a resource of its own and stays.
	if _, err := f.st.Principals().Get(ctx, uaiPrincipal.ObjectID); err != nil {
		t.Errorf("the user-assigned identity went with the resource: %v", err)
	}
}

func TestHeaderSigner(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	h, err := msi.LoadHeaderSigner(ctx, f.st.Settings())
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := msi.LoadHeaderSigner(ctx, f.st.Settings())
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1"
	header := h.Sign(id)
	if got, ok := h2.Verify(header); !ok || got != id {
		t.Fatalf("a second node can't verify: %q %v", got, ok)
	}
	for _, bad := range []string{"", "v1.x.y", header + "x", "v2" + header[2:]} {
		if _, ok := h.Verify(bad); ok {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
}
