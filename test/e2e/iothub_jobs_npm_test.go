package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestNPMIoTHubJobs runs the azure-iothub SDK's import/export job calls
// (key-based and by identity, with and without a user-assigned identity).
func TestNPMIoTHubJobs(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	group := "rg-npm-jobs"
	env := newJobsEnv(t, s, group)
	sub := s.App.Installation().SubscriptionID
	uamiID := func(name string) string {
		return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	}
	uami, other := uamiID("npm-jobs-uami"), uamiID("npm-jobs-other")
	uamiPrincipal := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)["properties"].(map[string]any)["principalId"].(string)
	putAndWait(t, s, other, "2023-01-31", `{"location":"westus"}`)
	h := createHubWith(t, s, group, `{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+uami+`":{}}}`)
	assignRole(t, s, uamiPrincipal, storageBlobDataContributor, env.acct.ID)
	assignRole(t, s, principalOf(t, s, h.ID, "2023-06-30"), storageBlobDataContributor, env.acct.ID)
	const n = 300
	env.put(t, "input", "devices.txt", []byte(strings.Join(deviceLines(n, "npm"), "\n")))
	runNodeTestEnv(t, s, "iothub-jobs.test.mjs", map[string]string{
		"IOTHUB_CONNECTION_STRING": h.ServiceConnectionString(),
		"JOBS_INPUT":               env.in, "JOBS_OUTPUT": env.out,
		"JOBS_INPUT_SAS": env.inSAS, "JOBS_OUTPUT_SAS": env.outSAS,
		"JOBS_UAMI": uami, "JOBS_OTHER_UAMI": other, "JOBS_DEVICES": fmt.Sprint(n),
	})
}
