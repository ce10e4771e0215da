package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// partialFailureTemplate deploys, in order: the identity "first", which
// deploys; an IoT hub that depends on it and that the IoT Hub provider
// refuses when it is PUT (sku "Z9" passes template validation — it is only
// a string to ARM — but is no IoT Hub sku); and the identity "third",
// which depends on the hub and so is never started. The secure parameters
// reach the deployed resources only as their lengths.
const partialFailureTemplate = `{
  "$schema": "` + templateSchema + `",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "hubName": {"type": "string"},
    "adminPassword": {"type": "securestring"},
    "connection": {"type": "secureObject"}
  },
  "variables": {"firstId": "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'first')]"},
  "resources": [
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "first",
     "location": "[resourceGroup().location]",
     "tags": {"passwordLength": "[string(length(parameters('adminPassword')))]",
              "connectionMembers": "[string(length(parameters('connection')))]"}},
    {"type": "Microsoft.Devices/IotHubs", "apiVersion": "2023-06-30", "name": "[parameters('hubName')]",
     "location": "[resourceGroup().location]", "dependsOn": ["[variables('firstId')]"],
     "sku": {"name": "Z9", "capacity": 1},
     "identity": {"type": "UserAssigned", "userAssignedIdentities": {"[variables('firstId')]": {}}}},
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "third",
     "location": "[resourceGroup().location]",
     "dependsOn": ["[resourceId('Microsoft.Devices/IotHubs', parameters('hubName'))]"]}
  ]
}`

// The secrets passed to partialFailureTemplate, which no response may echo.
const (
	failureAdminPassword = "Not-a-real-P@ssw0rd-5b1e"
	failureConnection    = "HostName=x.azure-devices.net;SharedAccessKey=c2VjcmV0LW5vdC1yZWFs"
)

// TestDeploymentPartialFailure: a deployment whose second resource the
// resource provider refuses fails as Azure Resource Manager's does. The
// poller's error and the deployment's properties.error are DeploymentFailed
// with a detail naming the hub and carrying the IoT Hub provider's own
// code and message; the operations are the identity's (Succeeded) and the
// hub's (Failed, the provider's error in its statusMessage) and none for
// the resource that depends on the hub; the identity stays and the
// dependent was never created. Secure parameters show only their type, and
// exportTemplate returns the template as sent. `az deployment group
// create` with the same template exits non-zero, naming the hub and
// DeploymentFailed, and prints no secret.
func TestDeploymentPartialFailure(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	sub := s.App.Installation().SubscriptionID
	const group = "rg-partial-failure"
	ensureGroup(t, s, group)
	deployments, operations := deploymentClients(t, s)
	const hubName = "partial-failure-hub"
	groupID := "/subscriptions/" + sub + "/resourceGroups/" + group
	hubID := groupID + "/providers/Microsoft.Devices/IotHubs/" + hubName
	identities := groupID + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	// The IoT Hub provider's own refusal of the sku.
	const providerCode, providerMessage = "400004", "sku.name 'Z9' is not an IoT Hub sku"

	tpl := decodeTemplate(t, partialFailureTemplate)
	poller, err := deployments.BeginCreateOrUpdate(ctx, group, "partial", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: tpl,
		Parameters: map[string]any{
			"hubName":       map[string]any{"value": hubName},
			"adminPassword": map[string]any{"value": failureAdminPassword},
			"connection":    map[string]any{"value": map[string]any{"connectionString": failureConnection}},
		},
	}}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, nil)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "DeploymentFailed" {
		t.Fatalf("the deployment's error = %v, want a DeploymentFailed response error", err)
	}
	for _, want := range []string{hubID, providerCode, providerMessage} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the poller's error lacks %q:\n%v", want, err)
		}
	}

	// GET: Failed, with the same error; the secrets withheld.
	dep, err := deployments.Get(ctx, group, "partial", nil)
	if err != nil {
		t.Fatal(err)
	}
	props := dep.Properties
	if props == nil || props.ProvisioningState == nil || *props.ProvisioningState != armresources.ProvisioningStateFailed {
		t.Fatalf("deployment: %s", mustMarshal(dep))
	}
	checkFailureError(t, "properties.error", props.Error, hubID, providerCode, providerMessage)
	raw := mustMarshal(dep)
	for _, secret := range []string{failureAdminPassword, failureConnection} {
		if strings.Contains(raw, secret) {
			t.Errorf("GET deployment echoes a secure parameter's value:\n%s", raw)
		}
	}
	params, _ := props.Parameters.(map[string]any)
	for name, want := range map[string]string{
		"adminPassword": `{"type":"SecureString"}`,
		"connection":    `{"type":"SecureObject"}`,
		"hubName":       `{"type":"String","value":"` + hubName + `"}`,
	} {
		if got := mustMarshal(params[name]); got != want {
			t.Errorf("properties.parameters.%s = %s, want %s", name, got, want)
		}
	}

	// Operations: the identity's succeeded, the hub's failed with the
	// provider's error, and the dependent never started.
	var ops []*armresources.DeploymentOperation
	pager := operations.NewListPager(group, "partial", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list operations: %v", err)
		}
		ops = append(ops, page.Value...)
	}
	byTarget := map[string]*armresources.DeploymentOperationProperties{}
	for _, op := range ops {
		if op.Properties == nil || op.Properties.TargetResource == nil || op.Properties.TargetResource.ID == nil {
			t.Fatalf("operation without a target: %s", mustMarshal(op))
		}
		byTarget[strings.ToLower(*op.Properties.TargetResource.ID)] = op.Properties
	}
	if len(ops) != 2 {
		t.Errorf("%d operations, want 2 (the identity's and the hub's): %s", len(ops), mustMarshal(ops))
	}
	if p := byTarget[strings.ToLower(identities+"first")]; p == nil || *p.ProvisioningState != "Succeeded" || *p.StatusCode != "Created" {
		t.Errorf("operation of 'first': %s", mustMarshal(p))
	}
	if p := byTarget[strings.ToLower(hubID)]; p == nil || *p.ProvisioningState != "Failed" || p.StatusCode == nil || *p.StatusCode != "BadRequest" ||
		p.StatusMessage == nil || p.StatusMessage.Error == nil {
		t.Errorf("operation of the hub: %s", mustMarshal(p))
	} else if e := p.StatusMessage.Error; e.Code == nil || *e.Code != providerCode || e.Message == nil || !strings.Contains(*e.Message, providerMessage) {
		t.Errorf("the hub operation's statusMessage.error = %s, want the provider's %s %q", mustMarshal(e), providerCode, providerMessage)
	}
	if p := byTarget[strings.ToLower(identities+"third")]; p != nil {
		t.Errorf("an operation for 'third', which depends on the failed hub: %s", mustMarshal(p))
	}

	// What was deployed before the failure stays; the rest was never made.
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	if code, body := op.do("GET", identities+"first?api-version=2023-01-31", ""); code != 200 {
		t.Errorf("'first' after the failed deployment: %d %v", code, body)
	} else if tags, _ := body["tags"].(map[string]any); tags["passwordLength"] != "24" || tags["connectionMembers"] != "1" {
		t.Errorf("'first' tags = %v, want the secure parameters' lengths 24 and 1", tags)
	}
	if code, _ := op.do("GET", hubID+"?api-version=2023-06-30", ""); code != 404 {
		t.Errorf("the refused hub: GET %d, want 404", code)
	}
	if code, _ := op.do("GET", identities+"third?api-version=2023-01-31", ""); code != 404 {
		t.Errorf("'third', which depends on the failed hub: GET %d, want 404", code)
	}

	// exportTemplate: the template as deployed.
	exported, err := deployments.ExportTemplate(ctx, group, "partial", nil)
	if err != nil {
		t.Fatalf("exportTemplate: %v", err)
	}
	if got, want := mustMarshal(exported.Template), mustMarshal(tpl); got != want {
		t.Errorf("exportTemplate:\n%s\nwant\n%s", got, want)
	}

	// What a user of az sees.
	env := s.Env()
	secret := env["AZURE_CLIENT_SECRET"]
	az := newAzCLI(t, s, secret)
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
	file := filepath.Join(t.TempDir(), "partial.json")
	if err := os.WriteFile(file, []byte(partialFailureTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	res := az.run("deployment", "group", "create", "-g", group, "-n", "partial-az", "--template-file", file,
		"--parameters", "hubName="+hubName, "adminPassword="+failureAdminPassword, `connection={"connectionString":"`+failureConnection+`"}`)
	if res.Err == nil {
		t.Fatalf("az deployment group create succeeded with a hub the provider refuses:\n%s", res)
	}
	for _, want := range []string{"DeploymentFailed", hubID, providerMessage} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("az's stderr lacks %q:\n%s", want, res)
		}
	}
	for _, secret := range []string{failureAdminPassword, failureConnection} {
		if strings.Contains(res.Stdout+res.Stderr, secret) {
			t.Errorf("az's output echoes a secure parameter's value:\n%s", res)
		}
	}
}

// checkFailureError checks a DeploymentFailed error: one detail, naming the
// failed resource as its target, with the provider's code and message.
func checkFailureError(t *testing.T, what string, e *armresources.ErrorResponse, target, code, message string) {
	t.Helper()
	if e == nil || e.Code == nil || *e.Code != "DeploymentFailed" || len(e.Details) != 1 {
		t.Errorf("%s = %s, want DeploymentFailed with one detail", what, mustMarshal(e))
		return
	}
	d := e.Details[0]
	if d.Target == nil || !strings.EqualFold(*d.Target, target) || d.Code == nil || *d.Code != code ||
		d.Message == nil || !strings.Contains(*d.Message, message) {
		t.Errorf("%s.details[0] = %s, want target %s, code %s, message %q", what, mustMarshal(d), target, code, message)
	}
}
