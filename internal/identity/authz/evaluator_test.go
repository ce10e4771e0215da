package authz

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

const (
	testSub = "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333"
	testRG  = testSub + "/resourceGroups/rg-iot"
)

func TestBuiltInRoles(t *testing.T) {
	roles := BuiltInRoles()
	if len(roles) != 20 {
		t.Fatalf("%d built-in roles, want 20", len(roles))
	}
	guid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	ids, names := map[string]bool{}, map[string]bool{}
	for _, r := range roles {
		if !guid.MatchString(r.ID) {
			t.Errorf("%s: id %q is not a lower-case GUID", r.Name, r.ID)
		}
		if ids[r.ID] || names[r.Name] {
			t.Errorf("duplicate role %s (%s)", r.Name, r.ID)
		}
		ids[r.ID], names[r.Name] = true, true
		if r.Type != BuiltInRole || r.Description == "" || len(r.AssignableScopes) != 1 || r.AssignableScopes[0] != "/" {
			t.Errorf("%s: type %q, description %q, assignable %v", r.Name, r.Type, r.Description, r.AssignableScopes)
		}
		for _, p := range r.Permissions {
			if p.Actions == nil || p.NotActions == nil || p.DataActions == nil || p.NotDataActions == nil {
				t.Errorf("%s: nil permission list renders as null, ARM renders []", r.Name)
			}
		}
	}
	// Fresh copies: a caller's edit must not leak into the next call.
	roles[0].Permissions[0].Actions[0] = "changed"
	if BuiltInRoles()[0].Permissions[0].Actions[0] == "changed" {
		t.Fatal("BuiltInRoles shares slices between calls")
	}
}

func TestFindBuiltIn(t *testing.T) {
	for _, in := range []string{
		"Storage Blob Data Contributor",
		"storage blob data contributor",
		"  Storage Blob Data Contributor ",
		StorageBlobDataContributorRoleID,
		strings.ToUpper(StorageBlobDataContributorRoleID),
		"/providers/Microsoft.Authorization/roleDefinitions/" + StorageBlobDataContributorRoleID,
		testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + StorageBlobDataContributorRoleID,
	} {
		r, ok := FindBuiltIn(in)
		if !ok || r.ID != StorageBlobDataContributorRoleID {
			t.Errorf("FindBuiltIn(%q) = %s, %v", in, r.ID, ok)
		}
	}
	for _, in := range []string{"", "Storage Blob", "00000000-0000-0000-0000-000000000000"} {
		if r, ok := FindBuiltIn(in); ok {
			t.Errorf("FindBuiltIn(%q) = %s, want none", in, r.Name)
		}
	}
}

func TestFullID(t *testing.T) {
	r, _ := FindBuiltIn("Owner")
	for scope, want := range map[string]string{
		testSub:       testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + OwnerRoleID,
		testSub + "/": testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + OwnerRoleID,
		testRG:        testRG + "/providers/Microsoft.Authorization/roleDefinitions/" + OwnerRoleID,
		"/":           "/providers/Microsoft.Authorization/roleDefinitions/" + OwnerRoleID,
		"":            "/providers/Microsoft.Authorization/roleDefinitions/" + OwnerRoleID,
	} {
		if got := r.FullID(scope); got != want {
			t.Errorf("FullID(%q) = %q, want %q", scope, got, want)
		}
		if g := RoleDefinitionGUID(r.FullID(scope)); g != OwnerRoleID {
			t.Errorf("RoleDefinitionGUID(FullID(%q)) = %q", scope, g)
		}
	}
}

func TestAssignableAt(t *testing.T) {
	custom := RoleDefinition{ID: "c", AssignableScopes: []string{testRG}}
	for scope, want := range map[string]bool{
		testRG:                      true,
		testRG + "/providers/X/y/z": true,
		strings.ToUpper(testRG):     true,
		testRG + "2":                false,
		testSub:                     false,
		"/":                         false,
	} {
		if got := custom.AssignableAt(scope); got != want {
			t.Errorf("AssignableAt(%q) = %v, want %v", scope, got, want)
		}
	}
	owner, _ := FindBuiltIn("Owner")
	if !owner.AssignableAt(testRG) || !owner.AssignableAt("/") {
		t.Error("built-in roles are assignable everywhere")
	}
}

func TestAssignmentsFor(t *testing.T) {
	in := []Assignment{
		{ID: "a1", PrincipalID: "P1", RoleDefinitionID: ReaderRoleID, Scope: testSub},
		{ID: "a2", PrincipalID: "p2", RoleDefinitionID: OwnerRoleID, Scope: testRG},
		{ID: "a3", PrincipalID: "p1", RoleDefinitionID: ContributorRoleID, Scope: testRG},
	}
	e := NewEvaluator(BuiltInRoles(), in)
	got := e.AssignmentsFor("p1")
	if len(got) != 2 || got[0].ID != "a1" || got[1].ID != "a3" {
		t.Fatalf("AssignmentsFor(p1) = %+v", got)
	}
	got[0].ID = "changed"
	if e.AssignmentsFor("P1")[0].ID != "a1" {
		t.Fatal("AssignmentsFor returns the evaluator's own slice")
	}
	in[1].Scope = "/"
	if d := e.Authorize("p2", "Microsoft.Storage/storageAccounts/write", false, testSub); d.Allowed {
		t.Fatal("NewEvaluator kept a reference to the caller's assignments")
	}
	if !e.HasAnyAssignment("p2") || !e.HasAnyAssignment("P2") || e.HasAnyAssignment("p3") {
		t.Fatal("HasAnyAssignment")
	}
	if e.AssignmentsFor("p3") != nil {
		t.Fatal("AssignmentsFor(unknown) should be nil")
	}
}

func TestRolesAreCopied(t *testing.T) {
	roles := []RoleDefinition{{ID: "r1", Name: "Custom", Type: CustomRole,
		Permissions: []Permission{{Actions: []string{"Microsoft.Storage/*/read"}}}}}
	e := NewEvaluator(roles, []Assignment{{ID: "a", PrincipalID: "p", RoleDefinitionID: "r1", Scope: testSub}})
	roles[0].Permissions[0].Actions[0] = "*"
	if d := e.Authorize("p", "Microsoft.Storage/storageAccounts/write", false, testRG); d.Allowed {
		t.Fatal("the evaluator follows edits to the caller's role definitions")
	}
	r, ok := e.Role("custom")
	if !ok || r.Permissions[0].Actions[0] != "Microsoft.Storage/*/read" {
		t.Fatalf("Role(custom) = %+v, %v", r, ok)
	}
	r.Permissions[0].Actions[0] = "*"
	if d := e.Authorize("p", "Microsoft.Storage/storageAccounts/write", false, testRG); d.Allowed {
		t.Fatal("Role returns the evaluator's own slices")
	}
	if _, ok := e.Role(testSub + "/providers/Microsoft.Authorization/roleDefinitions/R1"); !ok {
		t.Fatal("Role by full id")
	}
}

func TestLaterRoleWins(t *testing.T) {
	narrow := RoleDefinition{ID: "r", Name: "v1", Permissions: []Permission{{Actions: []string{"*/read"}}}}
	wide := RoleDefinition{ID: "R", Name: "v2", Permissions: []Permission{{Actions: []string{"*"}}}}
	e := NewEvaluator([]RoleDefinition{narrow, wide}, []Assignment{{ID: "a", PrincipalID: "p", RoleDefinitionID: "r", Scope: "/"}})
	d := e.Authorize("p", "Microsoft.Storage/storageAccounts/write", false, testRG)
	if !d.Allowed || d.RoleName != "v2" {
		t.Fatalf("got %v, want the later definition of r", d)
	}
	if d := e.Authorize("p", "Microsoft.X/y/delete", false, testRG); !strings.Contains(d.String(), "allowed by role \"v2\"") {
		t.Fatalf("String() = %q", d.String())
	}
}

func TestNilEvaluatorAndZeroPolicy(t *testing.T) {
	var e *Evaluator
	d := e.Authorize("p", "Microsoft.Storage/storageAccounts/read", false, testSub)
	if d.Allowed || !strings.Contains(d.Reason, "no role assignments at all") {
		t.Fatalf("nil evaluator: %v", d)
	}
	if e.HasAnyAssignment("p") || e.AssignmentsFor("p") != nil {
		t.Fatal("nil evaluator has assignments")
	}
	if _, ok := e.Role("Owner"); ok {
		t.Fatal("nil evaluator has roles")
	}
	var p Policy
	if p.Load() != nil || p.Authorize("p", "*", false, "/").Allowed {
		t.Fatal("zero Policy must deny")
	}
}

func TestPolicySwapUnderLoad(t *testing.T) {
	roles := BuiltInRoles()
	reader := NewEvaluator(roles, []Assignment{{ID: "r", PrincipalID: "p", RoleDefinitionID: ReaderRoleID, Scope: testSub}})
	owner := NewEvaluator(roles, []Assignment{{ID: "o", PrincipalID: "p", RoleDefinitionID: OwnerRoleID, Scope: testSub}})
	pol := NewPolicy(reader)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				d := pol.Authorize("p", "Microsoft.Storage/storageAccounts/read", false, testRG)
				if !d.Allowed || (d.AssignmentID != "r" && d.AssignmentID != "o") {
					t.Errorf("decision from a torn snapshot: %v", d)
					return
				}
			}
		})
	}
	for i := range 200 {
		if i%2 == 0 {
			pol.Store(owner)
		} else {
			pol.Store(reader)
		}
	}
	wg.Wait()
	pol.Store(owner)
	if d := pol.Authorize("p", "Microsoft.Storage/storageAccounts/write", false, testRG); !d.Allowed {
		t.Fatalf("after Store(owner): %v", d)
	}
}

func TestAuthorizeAllowedDoesNotAllocate(t *testing.T) {
	e := NewEvaluator(BuiltInRoles(), benchmarkAssignments(1000, 10))
	q := benchmarkQueries(e, true, 1)[0]
	allocs := testing.AllocsPerRun(100, func() {
		if !e.Authorize(q.principal, q.action, q.data, q.scope).Allowed {
			t.Fatal("query should be allowed")
		}
	})
	if allocs != 0 {
		t.Fatalf("allowed decision allocates %v times", allocs)
	}
}

func TestManyAssignmentsMessageIsBounded(t *testing.T) {
	var as []Assignment
	for i := range 20 {
		as = append(as, Assignment{ID: fmt.Sprint(i), PrincipalID: "p", RoleDefinitionID: ReaderRoleID,
			Scope: fmt.Sprintf("/subscriptions/s%d", i)})
	}
	d := NewEvaluator(BuiltInRoles(), as).Authorize("p", "Microsoft.Storage/storageAccounts/read", false, testSub)
	if d.Allowed || !strings.Contains(d.Reason, "and 15 more") {
		t.Fatalf("reason: %s", d.Reason)
	}
}

func TestMalformedAssignmentsNeverWiden(t *testing.T) {
	e := NewEvaluator(BuiltInRoles(), []Assignment{
		{ID: "no-principal", PrincipalID: " ", RoleDefinitionID: OwnerRoleID, Scope: "/"},
		{ID: "no-scope", PrincipalID: "p", RoleDefinitionID: OwnerRoleID, Scope: ""},
	})
	if d := e.Authorize("", "Microsoft.Storage/storageAccounts/write", false, testRG); d.Allowed {
		t.Fatalf("empty principal: %v", d)
	}
	if e.HasAnyAssignment(" ") {
		t.Fatal("an assignment without a principal was kept")
	}
	for _, scope := range []string{testRG, "/", ""} {
		if d := e.Authorize("p", "Microsoft.Storage/storageAccounts/write", false, scope); d.Allowed {
			t.Fatalf("assignment without a scope granted at %q: %v", scope, d)
		}
	}
}
