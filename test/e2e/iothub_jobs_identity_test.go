package e2e

import (
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestJobsSeedRules shows each of the seed document's rules for
// import/export with managed identities, with the bodies its C# and Python
// snippets send (storageAuthenticationType identityBased, identity
// {userAssignedIdentity}, type import|export), and the failure reasons.
func TestJobsSeedRules(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	group := "rg-jobs-mi"
	env := newJobsEnv(t, s, group)
	sub := s.App.Installation().SubscriptionID
	uamiID := func(name string) string {
		return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	}
	uami, other := uamiID("jobs-uami"), uamiID("jobs-other")
	uamiPrincipal := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)["properties"].(map[string]any)["principalId"].(string)
	putAndWait(t, s, other, "2023-01-31", `{"location":"westus"}`)

	both := createHubWith(t, s, group, `{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+uami+`":{}}}`)
	userOnly := createHubWith(t, s, group, `{"type":"UserAssigned","userAssignedIdentities":{"`+uami+`":{}}}`)
	none := createHubWith(t, s, group, "")
	systemPrincipal := principalOf(t, s, both.ID, "2023-06-30")
	assignRole(t, s, uamiPrincipal, storageBlobDataContributor, env.acct.ID)
	assignRole(t, s, systemPrincipal, storageBlobDataContributor, env.acct.ID)
	env.put(t, "input", "devices.txt", []byte(strings.Join(deviceLines(50, "mi"), "\n")))

	// The Python snippet's import (identity named) and export.
	pyImport := func(identity string) map[string]any {
		b := map[string]any{"type": "import", "inputBlobContainerUri": env.in, "outputBlobContainerUri": env.out, "storageAuthenticationType": "identityBased"}
		if identity != "" {
			b["identity"] = map[string]any{"userAssignedIdentity": identity}
		}
		return b
	}
	// The C# snippet's export (IdentityBased as its enum serializes).
	csExport := func(identity string) map[string]any {
		b := map[string]any{"type": "export", "outputBlobContainerUri": env.out, "excludeKeysInExport": false, "storageAuthenticationType": "IdentityBased"}
		if identity != "" {
			b["identity"] = map[string]any{"userAssignedIdentity": identity}
		}
		return b
	}

	t.Run("1 identityBased with userAssignedIdentity uses that identity", func(t *testing.T) {
		if j := runJob(t, s, userOnly, pyImport(uami)); j.Status != "completed" {
			t.Fatalf("import as the user-assigned identity: %+v", j)
		}
		if j := runJob(t, s, userOnly, csExport(uami)); j.Status != "completed" {
			t.Fatalf("export as the user-assigned identity: %+v", j)
		}
		if n := len(readExport(t, env.get(t, "output", "devices.txt"))); n != 50 {
			t.Fatalf("exported %d devices", n)
		}
	})
	t.Run("2 user-assigned identity not on the hub fails", func(t *testing.T) {
		j := runJob(t, s, both, pyImport(other))
		if j.Status != "failed" || !strings.Contains(j.FailureReason, other) || !strings.Contains(j.FailureReason, "not assigned to hub "+both.Name) {
			t.Fatalf("job: %+v", j)
		}
		t.Logf("reason: %s", j.FailureReason)
	})
	t.Run("3 identityBased without userAssignedIdentity uses the system-assigned identity", func(t *testing.T) {
		if j := runJob(t, s, both, pyImport("")); j.Status != "completed" {
			t.Fatalf("import as the system-assigned identity: %+v", j)
		}
		if j := runJob(t, s, both, csExport("")); j.Status != "completed" {
			t.Fatalf("export as the system-assigned identity: %+v", j)
		}
	})
	t.Run("4 hub without the system-assigned identity fails", func(t *testing.T) {
		j := runJob(t, s, userOnly, csExport(""))
		if j.Status != "failed" || !strings.Contains(j.FailureReason, "system-assigned identity") || !strings.Contains(j.FailureReason, uami) {
			t.Fatalf("job: %+v", j)
		}
		t.Logf("reason: %s", j.FailureReason)
	})
	t.Run("5 hub without any managed identity fails", func(t *testing.T) {
		for _, body := range []map[string]any{pyImport(""), csExport(uami)} {
			j := runJob(t, s, none, body)
			if j.Status != "failed" || !strings.Contains(j.FailureReason, "no managed identity") && !strings.Contains(j.FailureReason, "has no user-assigned identity") {
				t.Fatalf("job: %+v", j)
			}
			t.Logf("reason: %s", j.FailureReason)
		}
	})
	t.Run("keyBased uses the SAS in the URI", func(t *testing.T) {
		// The hub without identity still runs key-based jobs.
		if j := runJob(t, s, none, map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS, "storageAuthenticationType": "keyBased"}); j.Status != "completed" {
			t.Fatalf("job: %+v", j)
		}
	})
	t.Run("identity without the role fails naming identity, role and container", func(t *testing.T) {
		other := newJobsEnv(t, s, group)
		j := runJob(t, s, both, map[string]any{"type": "export", "outputBlobContainerUri": other.out, "storageAuthenticationType": "identityBased"})
		if j.Status != "failed" || !strings.Contains(j.FailureReason, systemPrincipal) || !strings.Contains(j.FailureReason, "Storage Blob Data Contributor") || !strings.Contains(j.FailureReason, other.acct.Name) {
			t.Fatalf("job: %+v", j)
		}
		t.Logf("reason: %s", j.FailureReason)
	})
}
