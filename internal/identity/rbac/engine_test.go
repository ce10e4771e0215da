package rbac_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// controlPlane is the RBAC engine behind the ARM service, as the app wires
// them: role assignments are written and deleted through arm.Service, which
// runs the types' Prepare/Provision/Deleted hooks.
type controlPlane struct {
	clock     *clock
	store     *sqlstore.Store
	engine    *rbac.Engine
	service   *arm.Service
	directory *identity.Directory
	sub       string
}

func newControlPlane(t testing.TB, delay time.Duration) *controlPlane {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst, err := arm.EnsureInstallation(ctx, st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2031, time.March, 4, 10, 0, 0, 0, time.UTC)}
	engine := rbac.NewEngine(st.Resources(), delay, c.Now, log)
	if err := engine.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
	dir := identity.NewDirectory(st.Principals(), c.Now)
	reg, err := arm.NewRegistry(rbac.NewRoleAssignments(engine, dir, inst.TenantID, c.Now), rbac.NewRoleDefinitions(engine, c.Now))
	if err != nil {
		t.Fatal(err)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log, Now: c.Now})
	return &controlPlane{clock: c, store: st, engine: engine, service: svc, directory: dir, sub: inst.SubscriptionID}
}

func (cp *controlPlane) principal(t testing.TB) store.Principal {
	t.Helper()
	sp, _, err := cp.directory.CreateServicePrincipal(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// assign PUTs a role assignment at the subscription and returns its id.
func (cp *controlPlane) assign(t testing.TB, principalID, roleID string) arm.ResourceID {
	t.Helper()
	id, err := arm.ParseResourceID("/subscriptions/" + cp.sub + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	body, err := arm.ParseDocument([]byte(fmt.Sprintf(`{"properties":{"roleDefinitionId":"/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s","principalId":%q,"principalType":"ServicePrincipal"}}`,
		cp.sub, roleID, principalID)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.service.PutResource(context.Background(), arm.PutInput{ID: id, APIVersion: "2022-04-01", Body: body}); err != nil {
		t.Fatalf("assign role: %v", err)
	}
	return id
}

func (cp *controlPlane) unassign(t testing.TB, id arm.ResourceID) {
	t.Helper()
	if _, found, err := cp.service.DeleteResource(context.Background(), id, ""); err != nil || !found {
		t.Fatalf("delete role assignment: found %v, %v", found, err)
	}
}

const blobRead = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"

func (cp *controlPlane) container() string {
	return "/subscriptions/" + cp.sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/c"
}

// TestAssignmentDeletionTakesEffectOnNextDecision: authorize, delete the
// assignment, and the very next decision is a denial.
func TestAssignmentDeletionTakesEffectOnNextDecision(t *testing.T) {
	cp := newControlPlane(t, 0)
	sp := cp.principal(t)
	if d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container()); d.Allowed {
		t.Fatalf("allowed before any assignment: %v", d)
	}
	id := cp.assign(t, sp.ObjectID, authz.StorageBlobDataReaderRoleID)
	d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container())
	if !d.Allowed || d.RoleName != "Storage Blob Data Reader" {
		t.Fatalf("after assignment: %v", d)
	}
	// Management permissions never grant data access, and vice versa.
	if d := cp.engine.Authorize(sp.ObjectID, "Microsoft.Storage/storageAccounts/read", false, cp.container()); d.Allowed {
		t.Errorf("a data role granted a management action: %v", d)
	}

	cp.unassign(t, id)
	d = cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container())
	if d.Allowed || d.Reason == "" {
		t.Fatalf("after deletion: %v", d)
	}
}

// TestPrincipalDeletionRemovesItsAssignments is the Directory.OnDelete hook
// the app installs: Azure deletes a principal's assignments with it.
func TestPrincipalDeletionRemovesItsAssignments(t *testing.T) {
	cp := newControlPlane(t, 0)
	sp, other := cp.principal(t), cp.principal(t)
	cp.assign(t, sp.ObjectID, authz.ReaderRoleID)
	cp.assign(t, other.ObjectID, authz.ReaderRoleID)
	cp.directory.OnDelete(func(ctx context.Context, oid string) {
		if err := cp.engine.DeleteAssignmentsOf(ctx, oid); err != nil {
			t.Error(err)
		}
	})
	const read = "Microsoft.Resources/subscriptions/resourceGroups/read"
	scope := "/subscriptions/" + cp.sub + "/resourceGroups/rg"
	if d := cp.engine.Authorize(sp.ObjectID, read, false, scope); !d.Allowed {
		t.Fatalf("before: %v", d)
	}
	if err := cp.directory.Delete(context.Background(), sp.ObjectID); err != nil {
		t.Fatal(err)
	}
	if d := cp.engine.Authorize(sp.ObjectID, read, false, scope); d.Allowed {
		t.Fatalf("a deleted principal's assignment still grants: %v", d)
	}
	if left := cp.engine.Evaluator().AssignmentsFor(sp.ObjectID); len(left) != 0 {
		t.Errorf("assignments left: %v", left)
	}
	if d := cp.engine.Authorize(other.ObjectID, read, false, scope); !d.Allowed {
		t.Errorf("another principal lost its assignment: %v", d)
	}
}

// TestPropagationDelay: with a delay, grants and revocations both wait for
// it — the change is not visible early, and is visible exactly when due.
func TestPropagationDelay(t *testing.T) {
	cp := newControlPlane(t, 2*time.Minute)
	sp := cp.principal(t)
	id := cp.assign(t, sp.ObjectID, authz.StorageBlobDataReaderRoleID)
	if d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container()); d.Allowed {
		t.Fatal("granted before the propagation delay")
	}
	cp.clock.Advance(2 * time.Minute)
	if d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container()); !d.Allowed {
		t.Fatalf("not granted after the delay: %v", d)
	}
	cp.unassign(t, id)
	if d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container()); !d.Allowed {
		t.Fatal("revoked before the propagation delay")
	}
	cp.clock.Advance(2 * time.Minute)
	if d := cp.engine.Authorize(sp.ObjectID, blobRead, true, cp.container()); d.Allowed {
		t.Fatalf("still granted after the delay: %v", d)
	}
}

// BenchmarkEngineAuthorize10k: decisions through the Engine with 10,000
// role assignments loaded from the store (1,000 principals with 10 each,
// at resource scopes across 10 resource groups).
func BenchmarkEngineAuthorize10k(b *testing.B) {
	cp := newControlPlane(b, 0)
	ctx := context.Background()
	roles := []string{authz.ReaderRoleID, authz.IoTHubDataContributorRoleID, authz.StorageBlobDataContributorRoleID}
	const principals, each = 1000, 10
	oids := make([]string, principals)
	for i := range oids {
		oids[i] = uuid.NewString()
	}
	account := func(rg, p int) string {
		return fmt.Sprintf("/subscriptions/%s/resourceGroups/rg%d/providers/Microsoft.Storage/storageAccounts/acct%d", cp.sub, rg, p)
	}
	for p, oid := range oids {
		for j := 0; j < each; j++ {
			scope := account(j, p)
			id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
			props, _ := json.Marshal(map[string]any{"properties": map[string]any{
				"roleDefinitionId": "/subscriptions/" + cp.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + roles[(p+j)%len(roles)],
				"principalId":      oid, "principalType": "ServicePrincipal", "scope": scope,
			}})
			if _, _, err := cp.store.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
				return store.Resource{ID: id, Type: rbac.AssignmentType, Subscription: cp.sub, ParentID: scope, Name: id[len(id)-36:], Body: props}, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := cp.engine.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	// Principal 500's last assignment (rg9) is Storage Blob Data Contributor
	// ((500+9)%3 == 2) on acct500: the decision scans all ten.
	p := 500
	if roles[(p+9)%3] != authz.StorageBlobDataContributorRoleID {
		b.Fatal("fixture: the granting assignment is not the last")
	}
	oid := oids[p]
	granted := account(9, p) + "/blobServices/default/containers/telemetry/blobs/2031/03/04/10.json"
	elsewhere := account(9, p+1) + "/blobServices/default/containers/telemetry"
	if n := len(cp.engine.Evaluator().AssignmentsFor(oid)); n != each {
		b.Fatalf("principal has %d assignments", n)
	}
	run := func(name, principal, action string, data bool, scope string, want bool) {
		b.Run(name, func(b *testing.B) {
			if d := cp.engine.Authorize(principal, action, data, scope); d.Allowed != want {
				b.Fatalf("decision %v, want allowed=%v", d, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				cp.engine.Authorize(principal, action, data, scope)
			}
		})
	}
	run("allowed", oid, blobRead, true, granted, true)
	run("denied", oid, blobRead, true, elsewhere, false)
	run("unknown-principal", uuid.NewString(), blobRead, true, granted, false)
	b.Run("allowed-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cp.engine.Authorize(oid, blobRead, true, granted)
			}
		})
	})
}
