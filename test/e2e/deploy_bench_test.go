package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestDeploymentThroughput measures a deployment of N resources from one
// copy loop (user-assigned identities), end to end: PUT, then polling until
// Succeeded. Set OUTPOST_DEPLOY_RESOURCES=500 to run it; it never asserts.
// (A test, not a Benchmark, because the e2e fixtures take *testing.T.)
func TestDeploymentThroughput(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("OUTPOST_DEPLOY_RESOURCES"))
	if err != nil || n <= 0 {
		t.Skip("set OUTPOST_DEPLOY_RESOURCES=<count> to measure")
	}
	s := testserver.Start(t)
	ensureGroup(t, s, "rg-deploy-bench")
	tpl := map[string]any{
		"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
		"parameters": map[string]any{"count": map[string]any{"type": "int"}},
		"resources": []any{map[string]any{
			"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
			"name": "[concat('id-', copyIndex())]", "location": "[resourceGroup().location]",
			"copy": map[string]any{"name": "ids", "count": "[parameters('count')]"},
		}},
	}
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{"mode": "Incremental", "template": tpl,
		"parameters": map[string]any{"count": map[string]any{"value": n}}}})
	id := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/rg-deploy-bench/providers/Microsoft.Resources/deployments/bench"
	start := time.Now()
	doc := putAndWait(t, s, id, "2021-04-01", string(body))
	took := time.Since(start)
	props := doc["properties"].(map[string]any)
	outs, _ := props["outputResources"].([]any)
	t.Logf("deployment of %d resources: %s, %s (%d output resources)", n, props["provisioningState"], took, len(outs))
}
