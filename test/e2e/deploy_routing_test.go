package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// routingTemplate creates, in one deployment, a user-assigned identity, an
// Event Hubs namespace and event hub, the identity's Data Sender role at the
// event hub, and a hub with that identity, an identity-based event hub
// endpoint and a route — everything the seed's routing scenario needs.
const routingTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"hubName": {"type": "string"}, "namespace": {"type": "string"}, "suffix": {"type": "string"}},
  "variables": {
    "identity": "[concat(parameters('hubName'), '-identity')]",
    "identityId": "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identity'))]",
    "eventHubId": "[resourceId('Microsoft.EventHub/namespaces/eventhubs', parameters('namespace'), 'telemetry')]"
  },
  "resources": [
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "[variables('identity')]", "location": "[resourceGroup().location]"},
    {"type": "Microsoft.EventHub/namespaces", "apiVersion": "2024-01-01", "name": "[parameters('namespace')]", "location": "[resourceGroup().location]",
     "sku": {"name": "Standard", "tier": "Standard"},
     "resources": [{"type": "eventhubs", "apiVersion": "2024-01-01", "name": "telemetry", "properties": {"partitionCount": 2},
                    "dependsOn": ["[parameters('namespace')]"]}]},
    {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01",
     "name": "[guid(variables('eventHubId'), variables('identity'))]",
     "scope": "[concat('Microsoft.EventHub/namespaces/', parameters('namespace'), '/eventhubs/telemetry')]",
     "dependsOn": ["[variables('eventHubId')]", "[variables('identityId')]"],
     "properties": {"roleDefinitionId": "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2b629674-e913-4c01-ae53-ef4638d8f975')]",
                    "principalId": "[reference(variables('identityId'), '2023-01-31').principalId]", "principalType": "ServicePrincipal"}},
    {"type": "Microsoft.Devices/IotHubs", "apiVersion": "2021-07-02", "name": "[parameters('hubName')]", "location": "[resourceGroup().location]",
     "sku": {"name": "S1", "capacity": 1},
     "identity": {"type": "UserAssigned", "userAssignedIdentities": {"[variables('identityId')]": {}}},
     "dependsOn": ["[resourceId('Microsoft.Authorization/roleAssignments', guid(variables('eventHubId'), variables('identity')))]"],
     "properties": {"routing": {
       "endpoints": {"eventHubs": [{"name": "hot", "authenticationType": "identityBased", "identity": {"userAssignedIdentity": "[variables('identityId')]"},
                                    "endpointUri": "[concat('sb://', parameters('namespace'), '.servicebus.', parameters('suffix'))]", "entityPath": "telemetry"}]},
       "routes": [{"name": "critical", "source": "DeviceMessages", "condition": "level = 'critical'", "endpointNames": ["hot"], "isEnabled": true}],
       "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true}}}}
  ],
  "outputs": {"hostName": {"type": "string", "value": "[reference(parameters('hubName')).hostName]"}}
}`

// TestDeploymentCreatesRouting: one deployment creates the identity, the
// event hub, the role assignment, and a hub routing to it; traffic from the
// npm device SDK flows right after.
func TestDeploymentCreatesRouting(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	const group = "rg-deploy-route"
	ensureGroup(t, s, group)
	hubName, ns := uniqueHubName("dephub"), uniqueName("ns-dep-", 20)
	id := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Resources/deployments/routing"
	var tpl map[string]any
	if err := json.Unmarshal([]byte(routingTemplate), &tpl); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{"mode": "Incremental", "template": tpl, "parameters": map[string]any{
		"hubName": map[string]any{"value": hubName}, "namespace": map[string]any{"value": ns}, "suffix": map[string]any{"value": s.Config.DNSSuffix},
	}}})
	doc := putAndWait(t, s, id, "2021-04-01", string(body))
	props := doc["properties"].(map[string]any)
	if props["provisioningState"] != "Succeeded" {
		t.Fatalf("deployment: %v", props)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	hubID := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + hubName
	_, keys := op.do("POST", hubID+"/listkeys?api-version=2023-06-30", "")
	h := testHub{Name: hubName, ID: hubID, HostName: fmt.Sprint(props["outputs"].(map[string]any)["hostName"].(map[string]any)["value"])}
	for _, k := range keys["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			h.OwnerKey = m["primaryKey"].(string)
		}
	}
	testserver.MapHosts(t, s.IP, h.HostName, ns+".servicebus."+s.Config.DNSSuffix)
	key := createDevice(t, s, h, "sensor")
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     strconv.Itoa(12),
	})
	e := testEntity{Namespace: ns, Name: "telemetry"}
	var events []map[string]any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if events = readEventHub(t, s, e); len(events) >= 4 {
			break
		}
	}
	if len(events) != 4 {
		t.Fatalf("the event hub got %d events, want the 4 critical ones", len(events))
	}
}
