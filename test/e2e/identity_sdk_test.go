package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/testserver"
)

const storageBlobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"

// TestGoSDKManagedIdentityAndRoles drives armmsi and armauthorization with
// a real ClientSecretCredential from Outpost's issuer: create a
// user-assigned identity, assign it Storage Blob Data Contributor on a
// group, list, and delete — then run a program as that identity with
// `outpost run --as` and check DefaultAzureCredential's token.
func TestGoSDKManagedIdentityAndRoles(t *testing.T) {
	bin := testserver.BuildBinary(t)
	whoami := buildWhoami(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		cred, opts := operatorCredential(t, s), armOptions(s)
		sub := s.App.Installation().SubscriptionID
		groups, _ := armresources.NewResourceGroupsClient(sub, cred, opts)
		if _, err := groups.CreateOrUpdate(ctx, "rg-mi", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
			t.Fatalf("create group: %v", err)
		}
		identities, err := armmsi.NewUserAssignedIdentitiesClient(sub, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		uai, err := identities.CreateOrUpdate(ctx, "rg-mi", "uai-go", armmsi.Identity{Location: to.Ptr("westus"), Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
		if err != nil {
			t.Fatalf("create identity: %v", err)
		}
		p := uai.Properties
		if p == nil || p.PrincipalID == nil || p.ClientID == nil || *p.TenantID != s.App.Installation().TenantID {
			t.Fatalf("identity properties = %+v", p)
		}
		again, err := identities.CreateOrUpdate(ctx, "rg-mi", "uai-go", armmsi.Identity{Location: to.Ptr("westus")}, nil)
		if err != nil || *again.Properties.PrincipalID != *p.PrincipalID {
			t.Fatalf("re-PUT changed the identity: %v %+v", err, again.Properties)
		}
		var listed int
		for pager := identities.NewListByResourceGroupPager("rg-mi", nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list identities: %v", err)
			}
			listed += len(page.Value)
		}
		if listed != 1 {
			t.Errorf("listed %d identities, want 1", listed)
		}

		scope := "/subscriptions/" + sub + "/resourceGroups/rg-mi"
		defs, err := armauthorization.NewRoleDefinitionsClient(cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		var roleID string
		for pager := defs.NewListPager(scope, &armauthorization.RoleDefinitionsClientListOptions{Filter: to.Ptr("roleName eq 'Storage Blob Data Contributor'")}); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list role definitions: %v", err)
			}
			for _, d := range page.Value {
				roleID = *d.ID
			}
		}
		if !strings.HasSuffix(roleID, storageBlobDataContributor) {
			t.Fatalf("role definition id = %q", roleID)
		}
		assignments, err := armauthorization.NewRoleAssignmentsClient(sub, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		name := uuid.NewString()
		ra, err := assignments.Create(ctx, scope, name, armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr(roleID), PrincipalID: p.PrincipalID, PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil)
		if err != nil {
			t.Fatalf("create role assignment: %v", err)
		}
		if *ra.Properties.Scope != scope || *ra.Properties.PrincipalID != *p.PrincipalID {
			t.Errorf("assignment = %+v", ra.Properties)
		}
		_, err = assignments.Create(ctx, scope, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: to.Ptr(roleID), PrincipalID: p.PrincipalID},
		}, nil)
		expectResponseError(t, err, 409, "RoleAssignmentExists")
		found := false
		for pager := assignments.NewListForScopePager(scope, &armauthorization.RoleAssignmentsClientListForScopeOptions{
			Filter: to.Ptr("principalId eq '" + *p.PrincipalID + "'")}); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list assignments: %v", err)
			}
			for _, a := range page.Value {
				found = found || *a.Name == name
			}
		}
		if !found {
			t.Error("the assignment is not listed for its principal")
		}

		// A program run as the identity gets its token from DefaultAzureCredential.
		claims := runAs(t, s, bin, whoami, *uai.ID)
		if claims["oid"] != *p.PrincipalID || !strings.EqualFold(claims["xms_mirid"].(string), *uai.ID) || claims["aud"] != "https://storage.azure.com" {
			t.Errorf("token claims under outpost run = %v", claims)
		}

		if _, err := assignments.Delete(ctx, scope, name, nil); err != nil {
			t.Fatalf("delete assignment: %v", err)
		}
		if _, err := identities.Delete(ctx, "rg-mi", "uai-go", nil); err != nil {
			t.Fatalf("delete identity: %v", err)
		}
		_, err = identities.Get(ctx, "rg-mi", "uai-go", nil)
		expectResponseError(t, err, 404, "ResourceNotFound")
	})
}

func buildWhoami(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "whoami")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/whoami")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build whoami: %v\n%s", err, out)
	}
	return bin
}

// runAs runs whoami under `outpost run --as id` with the operator's
// credentials in the environment (which run must strip from the child).
func runAs(t *testing.T, s *testserver.Server, outpost, whoami, id string) map[string]any {
	t.Helper()
	cmd := exec.Command(outpost, "run", "--as", id, "--", whoami)
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("outpost run --as %s: %v\n%s%s", id, err, out, stderr)
	}
	var claims map[string]any
	if err := json.Unmarshal(out, &claims); err != nil {
		t.Fatalf("whoami output %q: %v", out, err)
	}
	return claims
}
