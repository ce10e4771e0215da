package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// defaultedParametersTemplate has a location and an int that take their
// defaults, a string and a secure string that are supplied.
const defaultedParametersTemplate = `{
  "$schema": "` + templateSchema + `",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    "replicas": {"type": "int", "defaultValue": 3},
    "identityName": {"type": "string"},
    "adminPassword": {"type": "securestring"}
  },
  "resources": [
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
     "name": "[parameters('identityName')]", "location": "[parameters('location')]",
     "tags": {"replicas": "[string(parameters('replicas'))]",
              "passwordLength": "[string(length(parameters('adminPassword')))]"}}
  ]
}`

const defaultedParametersPassword = "Not-a-real-P@ssw0rd-9c4d"

// TestDeploymentParametersShowDefaults: as in Azure Resource Manager, the
// PUT response, GET and the list show every parameter the template
// declares with the value it deployed with — defaults evaluated — and a
// secure parameter by its type only.
func TestDeploymentParametersShowDefaults(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	sub := s.App.Installation().SubscriptionID
	const group, name = "rg-deploy-parameters", "defaulted"
	ensureGroup(t, s, group)
	want := map[string]string{
		"location":      `{"type":"String","value":"westus"}`,
		"replicas":      `{"type":"Int","value":3}`,
		"identityName":  `{"type":"String","value":"defaulted-id"}`,
		"adminPassword": `{"type":"SecureString"}`,
	}
	check := func(what string, params any) {
		t.Helper()
		m, _ := params.(map[string]any)
		if len(m) != len(want) {
			t.Errorf("%s: properties.parameters = %s, want the %d declared", what, mustMarshal(params), len(want))
		}
		for p, w := range want {
			if got := mustMarshal(m[p]); got != w {
				t.Errorf("%s: properties.parameters.%s = %s, want %s", what, p, got, w)
			}
		}
		if strings.Contains(mustMarshal(params), defaultedParametersPassword) {
			t.Errorf("%s shows the secure parameter's value", what)
		}
	}

	body, _ := json.Marshal(map[string]any{"properties": map[string]any{
		"mode": "Incremental", "template": decodeTemplate(t, defaultedParametersTemplate),
		"parameters": map[string]any{
			"identityName":  map[string]any{"value": "defaulted-id"},
			"adminPassword": map[string]any{"value": defaultedParametersPassword},
		},
	}})
	id := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Resources/deployments/" + name
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, put := op.do("PUT", id+"?api-version=2021-04-01", string(body))
	if code != 201 && code != 200 {
		t.Fatalf("PUT deployment: %d %v", code, put)
	}
	putProps, _ := put["properties"].(map[string]any)
	check("PUT response", putProps["parameters"])
	waitProvisioned(t, s, id, "2021-04-01")

	deployments, err := armresources.NewDeploymentsClient(sub, operatorCredential(t, s), armOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := deployments.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dep.Properties == nil || dep.Properties.ProvisioningState == nil || *dep.Properties.ProvisioningState != armresources.ProvisioningStateSucceeded {
		t.Fatalf("deployment: %s", mustMarshal(dep))
	}
	check("GET", dep.Properties.Parameters)

	pager := deployments.NewListByResourceGroupPager(group, nil)
	var listed bool
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list deployments: %v", err)
		}
		for _, d := range page.Value {
			if d.Name != nil && *d.Name == name && d.Properties != nil {
				listed = true
				check("list", d.Properties.Parameters)
			}
		}
	}
	if !listed {
		t.Errorf("the deployment is not listed")
	}
}
