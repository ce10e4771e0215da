package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/outpost-iot/outpost/internal/testserver"
)

const templateSchema = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

// identityTemplate deploys user-assigned identities named by the keys of
// the "identities" parameter, each tagged with its value.
const identityTemplate = `{
  "$schema": "` + templateSchema + `",
  "contentVersion": "1.0.0.0",
  "parameters": {"identities": {"type": "object"}},
  "resources": [{
    "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
    "name": "[items(parameters('identities'))[copyIndex()].key]",
    "location": "[resourceGroup().location]",
    "tags": {"env": "[items(parameters('identities'))[copyIndex()].value]"},
    "copy": {"name": "ids", "count": "[length(items(parameters('identities')))]"}
  }]
}`

func decodeTemplate(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeploymentWhatIfOperationsComplete, with the Go SDK: a deployment's
// operations list one Create per resource; whatIf reports the change set
// (a tag changed → Modify with the property path, a new resource → Create,
// an unlisted one → Ignore, and in Complete mode → Delete) without changing
// anything; a Complete mode deployment then deletes the unlisted resource
// and leaves role assignments alone.
func TestDeploymentWhatIfOperationsComplete(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	sub := s.App.Installation().SubscriptionID
	const group = "rg-whatif"
	ensureGroup(t, s, group)
	deployments, operations := deploymentClients(t, s)
	tpl := decodeTemplate(t, identityTemplate)
	params := func(ids map[string]any) map[string]any {
		return map[string]any{"identities": map[string]any{"value": ids}}
	}
	deploy := func(name string, mode armresources.DeploymentMode, ids map[string]any) {
		t.Helper()
		poller, err := deployments.BeginCreateOrUpdate(ctx, group, name, armresources.Deployment{Properties: &armresources.DeploymentProperties{
			Mode: to.Ptr(mode), Template: tpl, Parameters: params(ids)}}, nil)
		if err == nil {
			_, err = poller.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatalf("deployment %s: %v", name, err)
		}
	}
	deploy("first", armresources.DeploymentModeIncremental, map[string]any{"alpha": "dev", "gamma": "dev"})

	// Operations: one Create per resource, succeeded, naming its target.
	var ops []*armresources.DeploymentOperation
	pager := operations.NewListPager(group, "first", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list operations: %v", err)
		}
		ops = append(ops, page.Value...)
	}
	targets := map[string]bool{}
	for _, op := range ops {
		p := op.Properties
		if p == nil || p.TargetResource == nil || *p.ProvisioningState != "Succeeded" || *p.ProvisioningOperation != armresources.ProvisioningOperationCreate ||
			op.OperationID == nil || !strings.HasSuffix(*op.ID, "/operations/"+*op.OperationID) || *p.StatusCode != "Created" {
			t.Errorf("operation %+v", p)
			continue
		}
		targets[*p.TargetResource.ResourceName] = true
	}
	if len(ops) != 2 || !targets["alpha"] || !targets["gamma"] {
		t.Fatalf("operations of 'first': %d, targets %v", len(ops), targets)
	}
	one, err := operations.Get(ctx, group, "first", *ops[0].OperationID, nil)
	if err != nil || *one.OperationID != *ops[0].OperationID {
		t.Fatalf("get one operation: %v", err)
	}

	// A role assignment in the group, which Complete mode must leave.
	_, alpha := armCall{t, s, s.Token(t, testserver.ARMResource)}.do("GET",
		"/subscriptions/"+sub+"/resourceGroups/"+group+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/alpha?api-version=2023-01-31", "")
	assignRole(t, s, alpha["properties"].(map[string]any)["principalId"].(string), storageBlobDataContributor, "/subscriptions/"+sub+"/resourceGroups/"+group)

	whatIf := func(mode armresources.DeploymentMode) map[string]*armresources.WhatIfChange {
		t.Helper()
		poller, err := deployments.BeginWhatIf(ctx, group, "second", armresources.DeploymentWhatIf{Properties: &armresources.DeploymentWhatIfProperties{
			Mode: to.Ptr(mode), Template: tpl, Parameters: params(map[string]any{"alpha": "prod", "beta": "dev"})}}, nil)
		if err != nil {
			t.Fatalf("whatIf: %v", err)
		}
		res, err := poller.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatalf("whatIf: %v", err)
		}
		if res.Status == nil || *res.Status != "Succeeded" || res.Properties == nil {
			t.Fatalf("whatIf result %+v", res)
		}
		out := map[string]*armresources.WhatIfChange{}
		for _, c := range res.Properties.Changes {
			out[(*c.ResourceID)[strings.LastIndexByte(*c.ResourceID, '/')+1:]] = c
		}
		return out
	}
	changes := whatIf(armresources.DeploymentModeIncremental)
	if c := changes["alpha"]; c == nil || *c.ChangeType != armresources.ChangeTypeModify || len(c.Delta) != 1 ||
		*c.Delta[0].Path != "tags.env" || *c.Delta[0].PropertyChangeType != armresources.PropertyChangeTypeModify || c.Delta[0].Before != "dev" || c.Delta[0].After != "prod" {
		t.Errorf("alpha: %s", mustMarshal(c))
	}
	if c := changes["beta"]; c == nil || *c.ChangeType != armresources.ChangeTypeCreate || c.After == nil {
		t.Errorf("beta: %s", mustMarshal(c))
	}
	if c := changes["gamma"]; c == nil || *c.ChangeType != armresources.ChangeTypeIgnore {
		t.Errorf("gamma (not in the template, Incremental): %s", mustMarshal(c))
	}
	if c := whatIf(armresources.DeploymentModeComplete)["gamma"]; c == nil || *c.ChangeType != armresources.ChangeTypeDelete {
		t.Errorf("gamma (not in the template, Complete): %s", mustMarshal(c))
	}
	// whatIf changed nothing.
	if _, err := deployments.Get(ctx, group, "second", nil); err == nil {
		t.Error("whatIf created the deployment")
	}

	deploy("second", armresources.DeploymentModeComplete, map[string]any{"alpha": "prod", "beta": "dev"})
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	base := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	if code, _ := op.do("GET", base+"gamma?api-version=2023-01-31", ""); code != 404 {
		t.Errorf("Complete mode left 'gamma': %d", code)
	}
	if code, body := op.do("GET", base+"alpha?api-version=2023-01-31", ""); code != 200 || body["tags"].(map[string]any)["env"] != "prod" {
		t.Errorf("alpha after the Complete deployment: %d %v", code, body)
	}
	code, list := op.do("GET", "/subscriptions/"+sub+"/resourceGroups/"+group+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "")
	atGroup := 0
	for _, a := range list["value"].([]any) {
		if scope, _ := a.(map[string]any)["properties"].(map[string]any)["scope"].(string); strings.HasSuffix(scope, "/resourceGroups/"+group) {
			atGroup++
		}
	}
	if code != 200 || atGroup != 1 {
		t.Errorf("role assignments at the group after the Complete deployment: %d %v", code, list)
	}
	var deletes int
	pager = operations.NewListPager(group, "second", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Value {
			if *o.Properties.ProvisioningOperation == armresources.ProvisioningOperationDelete && *o.Properties.TargetResource.ResourceName == "gamma" {
				deletes++
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d Delete operations for 'gamma', want 1", deletes)
	}
}

// deploymentClients are the Go SDK's deployments and deployment operations
// clients for the server's subscription, signed in as the operator.
func deploymentClients(t *testing.T, s *testserver.Server) (*armresources.DeploymentsClient, *armresources.DeploymentOperationsClient) {
	t.Helper()
	sub := s.App.Installation().SubscriptionID
	cred, opts := operatorCredential(t, s), armOptions(s)
	deployments, err := armresources.NewDeploymentsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	operations, err := armresources.NewDeploymentOperationsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return deployments, operations
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// subscriptionTemplate creates a resource group and, through a nested
// deployment into it (inner scope), a user-assigned identity there.
const subscriptionTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"groupName": {"type": "string"}},
  "resources": [
    {"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2022-09-01", "name": "[parameters('groupName')]",
     "location": "[deployment().location]", "tags": {"made-by": "subscription deployment"}},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "inside",
     "resourceGroup": "[parameters('groupName')]",
     "dependsOn": ["[subscriptionResourceId('Microsoft.Resources/resourceGroups', parameters('groupName'))]"],
     "properties": {
       "mode": "Incremental",
       "expressionEvaluationOptions": {"scope": "inner"},
       "parameters": {"name": {"value": "[concat(parameters('groupName'), '-id')]"}},
       "template": {
         "$schema": "` + templateSchema + `", "contentVersion": "1.0.0.0",
         "parameters": {"name": {"type": "string"}},
         "resources": [{"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
                        "name": "[parameters('name')]", "location": "[resourceGroup().location]"}],
         "outputs": {"groupOfIdentity": {"type": "string", "value": "[resourceGroup().name]"}}
       }
     }}
  ],
  "outputs": {
    "groupId": {"type": "string", "value": "[subscriptionResourceId('Microsoft.Resources/resourceGroups', parameters('groupName'))]"},
    "nested": {"type": "string", "value": "[reference('inside').outputs.groupOfIdentity.value]"}
  }
}`

// TestDeploymentSubscriptionScope: `az deployment sub create` deploys a
// template that creates a resource group and deploys into it through a
// nested deployment; `az deployment sub what-if` and `az deployment
// operation sub list` work too, and a subscription deployment without a
// location is refused.
func TestDeploymentSubscriptionScope(t *testing.T) {
	s := testserver.Start(t)
	env := s.Env()
	secret := env["AZURE_CLIENT_SECRET"]
	az := newAzCLI(t, s, secret)
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
	file := filepath.Join(t.TempDir(), "sub.json")
	if err := os.WriteFile(file, []byte(subscriptionTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	var whatIf struct {
		Status  string
		Changes []struct {
			ResourceID string
			ChangeType string
		}
	}
	az.decode(&whatIf, "deployment", "sub", "what-if", "--name", "made-group", "--location", "westus",
		"--template-file", file, "--parameters", "groupName=rg-from-sub", "--no-pretty-print")
	// The group, and the identity of the nested deployment's template in
	// it (the nested deployment is no change of its own).
	creates := map[string]bool{}
	for _, c := range whatIf.Changes {
		if c.ChangeType == "Create" {
			creates[strings.ToLower(c.ResourceID[strings.Index(c.ResourceID, "/resourceGroups/"):])] = true
		}
	}
	if whatIf.Status != "Succeeded" || len(whatIf.Changes) != 2 || !creates["/resourcegroups/rg-from-sub"] ||
		!creates["/resourcegroups/rg-from-sub/providers/microsoft.managedidentity/userassignedidentities/rg-from-sub-id"] {
		t.Errorf("what-if: %+v", whatIf)
	}

	var dep struct {
		Properties struct {
			ProvisioningState string
			Outputs           map[string]struct{ Value string }
		}
	}
	az.decode(&dep, "deployment", "sub", "create", "--name", "made-group", "--location", "westus",
		"--template-file", file, "--parameters", "groupName=rg-from-sub")
	sub := s.App.Installation().SubscriptionID
	if dep.Properties.ProvisioningState != "Succeeded" ||
		!strings.EqualFold(dep.Properties.Outputs["groupId"].Value, "/subscriptions/"+sub+"/resourceGroups/rg-from-sub") ||
		dep.Properties.Outputs["nested"].Value != "rg-from-sub" {
		t.Fatalf("deployment: %+v", dep.Properties)
	}
	var group struct {
		Location string
		Tags     map[string]string
	}
	az.decode(&group, "group", "show", "-n", "rg-from-sub")
	if group.Location != "westus" || group.Tags["made-by"] != "subscription deployment" {
		t.Errorf("group %+v", group)
	}
	az.ok("identity", "show", "-g", "rg-from-sub", "-n", "rg-from-sub-id")

	var ops []struct {
		Properties struct {
			ProvisioningOperation string
			ProvisioningState     string
			TargetResource        struct{ ID string }
		}
	}
	az.decode(&ops, "deployment", "operation", "sub", "list", "--name", "made-group")
	if len(ops) != 2 {
		t.Errorf("subscription deployment operations: %+v", ops)
	}
	for _, o := range ops {
		if o.Properties.ProvisioningState != "Succeeded" || o.Properties.TargetResource.ID == "" {
			t.Errorf("operation %+v", o)
		}
	}

	// Without a location: refused, saying what to add.
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, body := op.do("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Resources/deployments/no-location?api-version=2021-04-01",
		`{"properties":{"mode":"Incremental","template":`+identityTemplate+`}}`)
	if msg := mustMarshal(body); code != 400 || !strings.Contains(msg, "LocationRequired") || !strings.Contains(msg, "location") {
		t.Errorf("no location: %d %s", code, msg)
	}
}

// TestDeploymentCancel: a serial copy loop deploys one identity at a time;
// cancel stops it (204), the deployment ends Canceled with the identities
// deployed so far kept, and cancelling it again is refused.
func TestDeploymentCancel(t *testing.T) {
	s := testserver.Start(t)
	sub := s.App.Installation().SubscriptionID
	const group = "rg-cancel"
	ensureGroup(t, s, group)
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	dep := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Resources/deployments/slow"
	const v = "?api-version=2021-04-01"
	code, body := op.do("PUT", dep+v, `{"properties":{"mode":"Incremental","template":{
	  "$schema":"`+templateSchema+`","contentVersion":"1.0.0.0",
	  "resources":[{"type":"Microsoft.ManagedIdentity/userAssignedIdentities","apiVersion":"2023-01-31",
	    "name":"[format('id{0:000}', copyIndex())]","location":"westus",
	    "copy":{"name":"ids","count":800,"mode":"Serial","batchSize":1}}]}}}`)
	if code != 201 {
		t.Fatalf("deploy: %d %v", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, list := op.do("GET", dep+"/operations"+v, "")
		if arr, _ := list["value"].([]any); len(arr) >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := op.do("POST", dep+"/cancel"+v, ""); code != 204 {
		t.Fatalf("cancel: %d %v", code, body)
	}
	var state string
	for time.Now().Before(deadline) {
		_, d := op.do("GET", dep+v, "")
		props, _ := d["properties"].(map[string]any)
		if state, _ = props["provisioningState"].(string); state != "Running" && state != "Accepted" {
			if errBody := mustMarshal(props["error"]); !strings.Contains(errBody, "DeploymentCanceled") {
				t.Errorf("error of the canceled deployment: %s", errBody)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state != "Canceled" {
		t.Fatalf("provisioningState after cancel = %q, want Canceled", state)
	}
	_, list := op.do("GET", "/subscriptions/"+sub+"/resourceGroups/"+group+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2023-01-31", "")
	if n := len(list["value"].([]any)); n == 0 || n >= 800 {
		t.Errorf("%d identities after cancel, want some but not all 800", n)
	}
	if code, body := op.do("POST", dep+"/cancel"+v, ""); code != 409 || !strings.Contains(mustMarshal(body), "DeploymentCannotBeCancelled") {
		t.Errorf("cancel a finished deployment: %d %v", code, body)
	}
}

// TestDeploymentSymbolicNames: `az deployment group create` with a
// languageVersion 2.0 template (what Bicep emits for newer features): an
// existing identity is read by symbolic name, not redeployed, and a new one
// depends on it by symbolic name.
func TestDeploymentSymbolicNames(t *testing.T) {
	s := testserver.Start(t)
	env := s.Env()
	secret := env["AZURE_CLIENT_SECRET"]
	az := newAzCLI(t, s, secret)
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
	const group = "rg-symbolic"
	az.ok("group", "create", "-n", group, "-l", "westus")
	var shared struct{ PrincipalID string }
	az.decode(&shared, "identity", "create", "-g", group, "-n", "shared-id")
	file := filepath.Join(t.TempDir(), "symbolic.json")
	tpl := `{
  "$schema": "` + templateSchema + `",
  "languageVersion": "2.0",
  "contentVersion": "1.0.0.0",
  "resources": {
    "shared": {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "shared-id", "existing": true},
    "worker": {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "worker-id",
               "location": "[resourceGroup().location]", "dependsOn": ["shared"],
               "tags": {"sharedPrincipal": "[reference('shared').principalId]"}}
  },
  "outputs": {"worker": {"type": "string", "value": "[reference('worker').principalId]"}}
}`
	if err := os.WriteFile(file, []byte(tpl), 0o600); err != nil {
		t.Fatal(err)
	}
	var dep struct {
		Properties struct {
			ProvisioningState string
			OutputResources   []struct{ ID string }
			Outputs           map[string]struct{ Value string }
		}
	}
	az.decode(&dep, "deployment", "group", "create", "-g", group, "-n", "symbolic", "--template-file", file)
	if dep.Properties.ProvisioningState != "Succeeded" || len(dep.Properties.OutputResources) != 1 || dep.Properties.Outputs["worker"].Value == "" {
		t.Fatalf("deployment: %+v", dep.Properties)
	}
	var worker struct{ Tags map[string]string }
	az.decode(&worker, "identity", "show", "-g", group, "-n", "worker-id")
	if worker.Tags["sharedPrincipal"] != shared.PrincipalID {
		t.Errorf("worker tags %v, want the shared identity's principal %s", worker.Tags, shared.PrincipalID)
	}
}

// TestDeploymentCLIProgress: `outpost deployment group create` prints each
// resource operation as it runs, `what-if` prints the change set, and a
// failing deployment exits non-zero naming the failure.
func TestDeploymentCLIProgress(t *testing.T) {
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	const group = "rg-cli-progress"
	ensureGroup(t, s, group)
	dir := t.TempDir()
	file := filepath.Join(dir, "ids.json")
	params := filepath.Join(dir, "params.json")
	if err := os.WriteFile(file, []byte(identityTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(params, []byte(`{"parameters":{"identities":{"value":{"cli-a":"dev","cli-b":"dev"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = os.Environ()
		for k, v := range s.Env() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	_, progress, err := run("deployment", "group", "create", "-g", group, "-n", "cli", "-f", file, "--parameters", "@"+params)
	if err != nil {
		t.Fatalf("deployment: %v\n%s", err, progress)
	}
	for _, want := range []string{"Microsoft.ManagedIdentity/userAssignedIdentities cli-a: Succeeded Created",
		"Microsoft.ManagedIdentity/userAssignedIdentities cli-b: Succeeded Created", "deployment cli: Succeeded"} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	out, changes, err := run("deployment", "group", "what-if", "-g", group, "-n", "cli", "-f", file,
		"--parameters", `identities={"cli-a":"prod","cli-c":"dev"}`)
	if err != nil || !strings.Contains(changes, "Modify") || !strings.Contains(changes, "tags.env") ||
		!strings.Contains(changes, "Create    /subscriptions/") || !strings.Contains(changes, "Ignore") || !strings.Contains(out, `"changes"`) {
		t.Errorf("what-if: %v\n%s\n%s", err, changes, out)
	}
	cycle := filepath.Join(dir, "cycle.json")
	os.WriteFile(cycle, []byte(`{"$schema":"`+templateSchema+`","contentVersion":"1.0.0.0","resources":[
	  {"type":"Microsoft.ManagedIdentity/userAssignedIdentities","apiVersion":"2023-01-31","name":"x","location":"westus","dependsOn":["y"]},
	  {"type":"Microsoft.ManagedIdentity/userAssignedIdentities","apiVersion":"2023-01-31","name":"y","location":"westus","dependsOn":["x"]}]}`), 0o600)
	if _, stderr, err := run("deployment", "group", "create", "-g", group, "-f", cycle); err == nil || !strings.Contains(stderr, "Circular dependency") {
		t.Errorf("a dependency cycle: err %v\n%s", err, stderr)
	}
}

// TestDeploymentEnvironmentIsOutpost: environment() describes Outpost, not
// the public cloud — its resource manager and its storage DNS suffix — at
// the top level and inside a nested deployment's inline template, so a
// template that builds a blob endpoint from it reaches Outpost.
func TestDeploymentEnvironmentIsOutpost(t *testing.T) {
	t.Parallel()
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	if r := runOutpostCode(t, s, bin, nil, "group", "create", "-n", "rg-env", "-l", "westus", "-o", "none"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	file := filepath.Join(t.TempDir(), "env.json")
	tpl := `{
  "$schema": "` + templateSchema + `",
  "contentVersion": "1.0.0.0",
  "resources": [{
    "type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "inner",
    "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"}, "template": {
      "$schema": "` + templateSchema + `", "contentVersion": "1.0.0.0", "resources": [],
      "outputs": {"blob": {"type": "string", "value": "[concat('https://acct.blob.', environment().suffixes.storage, '/')]"}}}}
  }],
  "outputs": {
    "storage": {"type": "string", "value": "[environment().suffixes.storage]"},
    "arm": {"type": "string", "value": "[environment().resourceManager]"},
    "innerBlob": {"type": "string", "value": "[reference('inner').outputs.blob.value]"}
  }
}`
	if err := os.WriteFile(file, []byte(tpl), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runOutpostCode(t, s, bin, nil, "deployment", "group", "create", "-g", "rg-env", "-n", "env", "--template-file", file,
		"--query", "[properties.outputs.storage.value, properties.outputs.arm.value, properties.outputs.innerBlob.value]", "-o", "tsv")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := s.Config.DNSSuffix + "\n" + s.Endpoint + "/\nhttps://acct.blob." + s.Config.DNSSuffix + "/\n"
	if r.stdout != want {
		t.Errorf("outputs %q, want %q", r.stdout, want)
	}
}
