package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// multiTemplate creates, in one deployment, a storage account, a
// user-assigned identity, a role assignment named with guid() that grants
// the identity Storage Blob Data Contributor on the account, and a hub that
// uses the identity — ordered by dependsOn and reference().
const multiTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "prefix": {"type": "string", "minLength": 3},
    "location": {"type": "string", "defaultValue": "[resourceGroup().location]"}
  },
  "variables": {
    "account": "[concat(parameters('prefix'), uniqueString(resourceGroup().id))]",
    "identity": "[concat(parameters('prefix'), '-identity')]",
    "hub": "[concat(parameters('prefix'), '-hub')]",
    "contributor": "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')]"
  },
  "resources": [
    {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "[variables('account')]",
     "location": "[parameters('location')]", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
     "name": "[variables('identity')]", "location": "[parameters('location')]"},
    {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01",
     "name": "[guid(resourceGroup().id, variables('account'), variables('identity'))]",
     "scope": "[concat('Microsoft.Storage/storageAccounts/', variables('account'))]",
     "dependsOn": ["[resourceId('Microsoft.Storage/storageAccounts', variables('account'))]"],
     "properties": {
       "roleDefinitionId": "[variables('contributor')]",
       "principalId": "[reference(variables('identity')).principalId]",
       "principalType": "ServicePrincipal"
     }},
    {"type": "Microsoft.Devices/IotHubs", "apiVersion": "2021-07-02", "name": "[variables('hub')]",
     "location": "[parameters('location')]", "sku": {"name": "S1", "capacity": 1},
     "identity": {"type": "UserAssigned", "userAssignedIdentities": {
       "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identity'))]": {}}},
     "dependsOn": ["[resourceId('Microsoft.Authorization/roleAssignments', guid(resourceGroup().id, variables('account'), variables('identity')))]",
                   "[variables('identity')]"]}
  ],
  "outputs": {
    "hubHostName": {"type": "string", "value": "[reference(variables('hub')).hostName]"},
    "principalId": {"type": "string", "value": "[reference(variables('identity')).principalId]"},
    "accountKey": {"type": "string", "value": "[listKeys(variables('account'), '2023-01-01').keys[0].value]"}
  }
}`

// TestDeploymentGoSDK: armresources.DeploymentsClient.BeginCreateOrUpdate
// and its poller deploy multiTemplate; the outputs read the deployed
// resources, and the role assignment and the hub's identity are in place.
func TestDeploymentGoSDK(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		sub := s.App.Installation().SubscriptionID
		ensureGroup(t, s, "rg-deploy-sdk")
		client, err := armresources.NewDeploymentsClient(sub, operatorCredential(t, s), armOptions(s))
		if err != nil {
			t.Fatal(err)
		}
		var tpl map[string]any
		if err := json.Unmarshal([]byte(multiTemplate), &tpl); err != nil {
			t.Fatal(err)
		}
		prefix := uniqueName("dep", 10)
		poller, err := client.BeginCreateOrUpdate(ctx, "rg-deploy-sdk", "multi", armresources.Deployment{
			Properties: &armresources.DeploymentProperties{
				Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: tpl,
				Parameters: map[string]any{"prefix": map[string]any{"value": prefix}},
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := poller.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatalf("deployment: %v", err)
		}
		props := res.Properties
		if props == nil || props.ProvisioningState == nil || *props.ProvisioningState != armresources.ProvisioningStateSucceeded {
			t.Fatalf("deployment = %+v", props)
		}
		outs, _ := props.Outputs.(map[string]any)
		out := func(name string) string {
			o, _ := outs[name].(map[string]any)
			v, _ := o["value"].(string)
			return v
		}
		if !strings.HasPrefix(out("hubHostName"), strings.ToLower(prefix)+"-hub.") || out("principalId") == "" || out("accountKey") == "" {
			t.Fatalf("outputs %v", outs)
		}
		if len(props.OutputResources) != 4 {
			t.Errorf("outputResources %d, want 4", len(props.OutputResources))
		}
		op := armCall{t, s, s.Token(t, testserver.ARMResource)}
		hubID := "/subscriptions/" + sub + "/resourceGroups/rg-deploy-sdk/providers/Microsoft.Devices/IotHubs/" + prefix + "-hub"
		_, hub := op.do("GET", hubID+"?api-version=2023-06-30", "")
		ident, _ := hub["identity"].(map[string]any)
		if ident["type"] != "UserAssigned" {
			t.Errorf("hub identity %v", ident)
		}
		code, list := op.do("GET", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+
			"principalId%20eq%20'"+out("principalId")+"'", "")
		if arr, _ := list["value"].([]any); code != 200 || len(arr) != 1 {
			t.Errorf("role assignments of the identity: %d %v", code, list)
		}

		// A template that refers to a resource that doesn't exist fails
		// with DeploymentFailed naming it; a cycle is refused up front.
		bad := map[string]any{
			"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
			"resources": []any{map[string]any{
				"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "x", "location": "westus",
				"tags": map[string]any{"p": "[reference(resourceId('Microsoft.Storage/storageAccounts', 'nosuchacct'), '2023-01-01').primaryEndpoints.blob]"},
			}},
		}
		p2, err := client.BeginCreateOrUpdate(ctx, "rg-deploy-sdk", "bad", armresources.Deployment{
			Properties: &armresources.DeploymentProperties{Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: bad},
		}, nil)
		if err == nil {
			_, err = p2.PollUntilDone(ctx, nil)
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "nosuchacct") {
			t.Errorf("reference to a missing resource: %v", err)
		}
		cycle := map[string]any{
			"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
			"resources": []any{
				map[string]any{"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "a", "location": "westus", "dependsOn": []any{"b"}},
				map[string]any{"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "b", "location": "westus", "dependsOn": []any{"a"}},
			},
		}
		p3, err := client.BeginCreateOrUpdate(ctx, "rg-deploy-sdk", "cycle", armresources.Deployment{
			Properties: &armresources.DeploymentProperties{Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: cycle},
		}, nil)
		if err == nil {
			_, err = p3.PollUntilDone(ctx, nil)
		}
		if err == nil || !strings.Contains(err.Error(), "Circular dependency") {
			t.Errorf("dependency cycle: %v", err)
		}
	})
}
