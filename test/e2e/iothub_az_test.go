package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// azIotHub is the part of `az iot hub` output the tests read.
type azIotHub struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	Location      string `json:"location"`
	ResourceGroup string `json:"resourcegroup"`
	SKU           struct {
		Name     string `json:"name"`
		Tier     string `json:"tier"`
		Capacity int    `json:"capacity"`
	} `json:"sku"`
	Identity   azHubIdentity `json:"identity"`
	Properties struct {
		HostName              string `json:"hostName"`
		State                 string `json:"state"`
		ProvisioningState     string `json:"provisioningState"`
		AuthorizationPolicies []any  `json:"authorizationPolicies"`
		EventHubEndpoints     map[string]struct {
			PartitionCount int `json:"partitionCount"`
		} `json:"eventHubEndpoints"`
	} `json:"properties"`
}

type azHubIdentity struct {
	Type                   string `json:"type"`
	PrincipalID            string `json:"principalId"`
	TenantID               string `json:"tenantId"`
	UserAssignedIdentities map[string]struct {
		PrincipalID string `json:"principalId"`
		ClientID    string `json:"clientId"`
	} `json:"userAssignedIdentities"`
}

// TestAzIotHub drives Debian's az 2.45 `az iot hub` commands, which need
// what real IoT Hub returns and clients.md 2.3 lists: an identity block
// even without identities, checkNameAvailability saying an existing hub's
// name is taken, the top-level "resourcegroup" (used when -g is omitted)
// and a tolerated malformed If-Match.
func TestAzIotHub(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		env := s.Env()
		secret := env["AZURE_CLIENT_SECRET"]
		az := newAzCLI(t, s, secret)
		azRegisterCloud(az, s)
		az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
		const group = "rg-iothub-az"
		az.ok("group", "create", "-n", group, "-l", "westus")
		name := uniqueHubName("azhub")

		// Create: az sends api-version 2022-04-30-preview and polls the
		// Azure-AsyncOperation URL, then GETs the hub.
		var hub azIotHub
		az.decode(&hub, "iot", "hub", "create", "-n", name, "-g", group, "--sku", "S1")
		wantID := "/subscriptions/" + env["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
		if hub.ID != wantID || hub.Name != name || hub.Type != "Microsoft.Devices/IotHubs" || hub.Location != "westus" || hub.ResourceGroup != group {
			t.Errorf("az iot hub create = %+v, want %s in westus", hub, wantID)
		}
		if p := hub.Properties; p.ProvisioningState != "Succeeded" || p.State != "Active" || p.HostName != strings.ToLower(name)+"."+s.Config.DNSSuffix ||
			p.AuthorizationPolicies != nil || p.EventHubEndpoints["events"].PartitionCount != 4 {
			t.Errorf("az iot hub create properties = %+v", p)
		}
		if hub.SKU.Name != "S1" || hub.SKU.Tier != "Standard" || hub.SKU.Capacity != 1 || hub.Identity.Type != "None" {
			t.Errorf("az iot hub create sku %+v identity %+v", hub.SKU, hub.Identity)
		}

		// Show without -g: az lists the subscription's hubs and takes the
		// resource group from the hub's "resourcegroup".
		var shown azIotHub
		az.decode(&shown, "iot", "hub", "show", "-n", name)
		if shown.ID != hub.ID || shown.Properties.HostName != hub.Properties.HostName {
			t.Errorf("az iot hub show = %+v, want %+v", shown, hub)
		}
		// With -g az first asks checkNameAvailability, which must say taken.
		var shownInGroup azIotHub
		az.decode(&shownInGroup, "iot", "hub", "show", "-n", name, "-g", group)
		if shownInGroup.ID != hub.ID {
			t.Errorf("az iot hub show -g = %+v", shownInGroup)
		}

		// Identities: system-assigned, then a user-assigned one as well.
		var system azHubIdentity
		az.decode(&system, "iot", "hub", "identity", "assign", "-n", name, "--system-assigned")
		if system.Type != "SystemAssigned" || !azGUIDPattern.MatchString(system.PrincipalID) || system.TenantID != env["AZURE_TENANT_ID"] {
			t.Fatalf("az iot hub identity assign --system-assigned = %+v", system)
		}
		var uai azIdentity
		az.decode(&uai, "identity", "create", "-g", group, "-n", "uai-iothub")
		var both azHubIdentity
		az.decode(&both, "iot", "hub", "identity", "assign", "-n", name, "-g", group, "--user-assigned", uai.ID)
		var ref struct{ PrincipalID, ClientID string }
		for id, r := range both.UserAssignedIdentities {
			if strings.EqualFold(id, uai.ID) {
				ref = struct{ PrincipalID, ClientID string }{r.PrincipalID, r.ClientID}
			}
		}
		if both.Type != "SystemAssigned, UserAssigned" || both.PrincipalID != system.PrincipalID ||
			ref.PrincipalID != uai.PrincipalID || ref.ClientID != uai.ClientID {
			t.Errorf("az iot hub identity assign --user-assigned = %+v, want the system identity %s kept and %s with principal %s",
				both, system.PrincipalID, uai.ID, uai.PrincipalID)
		}
		var identity azHubIdentity
		az.decode(&identity, "iot", "hub", "identity", "show", "-n", name)
		if identity.Type != both.Type || identity.PrincipalID != both.PrincipalID {
			t.Errorf("az iot hub identity show = %+v, want %+v", identity, both)
		}

		// Policies (listkeys) survive the identity updates.
		var policies []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
			Rights     string `json:"rights"`
		}
		az.decode(&policies, "iot", "hub", "policy", "list", "--hub-name", name)
		if len(policies) != 5 || policies[0].KeyName != "iothubowner" || policies[0].PrimaryKey == "" {
			t.Errorf("az iot hub policy list = %+v", policies)
		}

		var owner struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
		}
		az.decode(&owner, "iot", "hub", "policy", "show", "--hub-name", name, "-n", "iothubowner")
		if owner.KeyName != "iothubowner" || owner.PrimaryKey != policies[0].PrimaryKey {
			t.Errorf("az iot hub policy show = %+v, want the iothubowner keys of policy list", owner)
		}
		var stats struct {
			TotalDeviceCount *int `json:"totalDeviceCount"`
		}
		az.decode(&stats, "iot", "hub", "show-stats", "-n", name)
		if stats.TotalDeviceCount == nil || *stats.TotalDeviceCount != 0 {
			t.Errorf("az iot hub show-stats = %+v", stats)
		}

		// List, by subscription and by group.
		for _, args := range [][]string{{"iot", "hub", "list"}, {"iot", "hub", "list", "-g", group}} {
			var hubs []azIotHub
			az.decode(&hubs, args...)
			if !slices.ContainsFunc(hubs, func(h azIotHub) bool { return h.ID == hub.ID && h.ResourceGroup == group }) {
				t.Errorf("az %s = %+v, want it to contain %s", strings.Join(args, " "), hubs, hub.ID)
			}
		}

		// Delete, long-running, without -g.
		az.ok("iot", "hub", "delete", "-n", name)
		var left []azIotHub
		az.decode(&left, "iot", "hub", "list", "-g", group)
		if len(left) != 0 {
			t.Errorf("az iot hub list after delete = %+v, want none", left)
		}
		if gone := az.run("iot", "hub", "show", "-n", name, "-g", group); gone.Err == nil || !strings.Contains(gone.Stderr, "was not found") {
			t.Errorf("az iot hub show of a deleted hub: want 'was not found'\n%s", gone)
		}
		az.ok("group", "delete", "-n", group, "--yes")
	})
}
