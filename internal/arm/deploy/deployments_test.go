package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// groupOnlyService is the resource manager of a deployment whose template
// deploys nothing: it knows one resource group, in westus.
type groupOnlyService struct{}

var errNotInFake = errors.New("not part of this fake")

func (groupOnlyService) ResolveType(arm.ResourceID) (arm.ResourceType, error) {
	return nil, errNotInFake
}
func (groupOnlyService) PutResource(context.Context, arm.PutInput) (arm.PutResult, error) {
	return arm.PutResult{}, errNotInFake
}
func (groupOnlyService) GetResource(context.Context, arm.ResourceID) (store.Resource, error) {
	return store.Resource{}, errNotInFake
}
func (groupOnlyService) GetOperation(context.Context, string) (store.Operation, *arm.Error, error) {
	return store.Operation{}, nil, errNotInFake
}
func (groupOnlyService) GetGroup(_ context.Context, sub, name string) (store.Resource, error) {
	return store.Resource{ID: "/subscriptions/" + sub + "/resourceGroups/" + name, Name: name,
		Body: json.RawMessage(`{"location":"westus","tags":{}}`)}, nil
}
func (groupOnlyService) PutGroup(context.Context, string, string, arm.Document) (store.Resource, bool, error) {
	return store.Resource{}, false, errNotInFake
}
func (groupOnlyService) DeleteResource(context.Context, arm.ResourceID, string) (*store.Operation, bool, error) {
	return nil, false, errNotInFake
}
func (groupOnlyService) Action(context.Context, arm.ResourceID, string, json.RawMessage) (any, error) {
	return nil, errNotInFake
}

func newTestDeployments(t *testing.T) *deploy.Deployments {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	d := deploy.New(deploy.Config{Resources: st.Resources(), TenantID: defaultTenant, Now: func() time.Time { return goldenNow }})
	d.Bind(groupOnlyService{})
	return d
}

// parametersTemplate declares a parameter of each kind a deployment shows:
// defaulted from the group, a defaulted int, a supplied string, a supplied
// secure string, a defaulted secure string and a newGuid() default (whose
// value must be the one deployed, not one evaluated again). deployment()
// keeps showing only the supplied parameters, as before.
const parametersTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    "units": {"type": "int", "defaultValue": 2},
    "hubName": {"type": "string"},
    "secret": {"type": "securestring"},
    "defaultSecret": {"type": "secureString", "defaultValue": "[concat('s-', parameters('hubName'))]"},
    "suffix": {"type": "string", "defaultValue": "[newGuid()]"}
  },
  "resources": [],
  "outputs": {
    "suffix": {"type": "string", "value": "[parameters('suffix')]"},
    "defaultSecret": {"type": "string", "value": "[parameters('defaultSecret')]"},
    "supplied": {"type": "int", "value": "[length(deployment().properties.parameters)]"}
  }
}`

func deploymentBody(t *testing.T, template string, params map[string]any) arm.Document {
	t.Helper()
	var tmpl map[string]any
	if err := json.Unmarshal([]byte(template), &tmpl); err != nil {
		t.Fatal(err)
	}
	wrapped := map[string]any{}
	for k, v := range params {
		wrapped[k] = map[string]any{"value": v}
	}
	doc := arm.Document{}
	doc.Set("properties", map[string]any{"mode": "Incremental", "template": tmpl, "parameters": wrapped})
	return doc
}

func deploymentID(t *testing.T, name string) arm.ResourceID {
	t.Helper()
	id, err := arm.ParseResourceID("/subscriptions/" + defaultSubscription + "/resourceGroups/rg/providers/Microsoft.Resources/deployments/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// shown decodes properties.<member> of a deployment document.
func shown(t *testing.T, doc []byte, member string) map[string]any {
	t.Helper()
	var m struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	out, _ := m.Properties[member].(map[string]any)
	return out
}

// TestDeploymentParametersShowDefaults: as in ARM, PUT (and so GET) and
// validate show every declared parameter with the value it deploys with,
// defaults evaluated; secure ones by type only.
func TestDeploymentParametersShowDefaults(t *testing.T) {
	ctx := context.Background()
	d := newTestDeployments(t)
	id := deploymentID(t, "params")
	body := deploymentBody(t, parametersTemplate, map[string]any{"hubName": "hub1", "secret": "p@ss"})

	doc, err := d.Prepare(ctx, arm.PutRequest{ID: id, Body: body})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	rendered := d.Render(store.Resource{ID: id.String(), Body: doc.Bytes()})
	if strings.Contains(string(rendered), "outpost:") || strings.Contains(string(rendered), "p@ss") || strings.Contains(string(rendered), "s-hub1") {
		t.Errorf("the rendered deployment shows hidden members or secure values: %s", rendered)
	}
	params := shown(t, rendered, "parameters")
	suffix, _ := params["suffix"].(map[string]any)["value"].(string)
	if len(suffix) != 36 {
		t.Fatalf("suffix = %v, want a GUID", params["suffix"])
	}
	want := map[string]any{
		"location":      map[string]any{"type": "String", "value": "westus"},
		"units":         map[string]any{"type": "Int", "value": float64(2)},
		"hubName":       map[string]any{"type": "String", "value": "hub1"},
		"secret":        map[string]any{"type": "SecureString"},
		"defaultSecret": map[string]any{"type": "SecureString"},
		"suffix":        map[string]any{"type": "String", "value": suffix},
	}
	if !jsonEqual(params, want) {
		t.Errorf("PUT properties.parameters =\n%s\nwant\n%s", indented(params), indented(want))
	}

	// The run deploys with the values shown: newGuid() is not evaluated
	// again, the defaulted secure value is kept for it.
	final, err := d.Provision(ctx, id, doc)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	outputs := shown(t, final.Bytes(), "outputs")
	if got := outputs["suffix"].(map[string]any)["value"]; got != suffix {
		t.Errorf("output suffix = %v, want the shown %s", got, suffix)
	}
	if got := outputs["defaultSecret"].(map[string]any)["value"]; got != "s-hub1" {
		t.Errorf("output defaultSecret = %v, want s-hub1", got)
	}
	if got := outputs["supplied"].(map[string]any)["value"]; got != float64(2) {
		t.Errorf("deployment().properties.parameters has %v members, want the 2 supplied", got)
	}
	if !jsonEqual(shown(t, final.Bytes(), "parameters"), want) {
		t.Errorf("final properties.parameters = %s, want %s", indented(shown(t, final.Bytes(), "parameters")), indented(want))
	}
	for _, member := range []string{"outpost:secureParameters", "outpost:defaultedParameters"} {
		if _, ok := final[member]; ok {
			t.Errorf("the ended deployment still keeps %s", member)
		}
	}

	out, err := d.Action(ctx, store.Resource{ID: id.String(), Name: id.Name()}, "validate", body.Bytes())
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	vparams := shown(t, mustMarshal(t, out), "parameters")
	vsuffix, _ := vparams["suffix"].(map[string]any)["value"].(string)
	want["suffix"] = map[string]any{"type": "String", "value": vsuffix}
	if len(vsuffix) != 36 || !jsonEqual(vparams, want) {
		t.Errorf("validate properties.parameters =\n%s\nwant\n%s", indented(vparams), indented(want))
	}
}

// TestDeploymentParameterDefaultFailsTheRun: a default that can't be
// evaluated is not shown, and fails the deployment when it runs, as it did
// before defaults were shown; the PUT itself is accepted.
func TestDeploymentParameterDefaultFailsTheRun(t *testing.T) {
	ctx := context.Background()
	d := newTestDeployments(t)
	id := deploymentID(t, "baddefault")
	const template = `{
  "parameters": {
    "ok": {"type": "string", "defaultValue": "[resourceGroup().name]"},
    "bad": {"type": "string", "defaultValue": "[parameters('nope')]"}
  },
  "resources": []
}`
	doc, err := d.Prepare(ctx, arm.PutRequest{ID: id, Body: deploymentBody(t, template, nil)})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	want := map[string]any{"ok": map[string]any{"type": "String", "value": "rg"}}
	if got := shown(t, doc.Bytes(), "parameters"); !jsonEqual(got, want) {
		t.Errorf("properties.parameters = %s, want %s", indented(got), indented(want))
	}
	_, err = d.Provision(ctx, id, doc)
	var ae *arm.Error
	if !errors.As(err, &ae) || ae.Code != "InvalidTemplate" || !strings.Contains(ae.Message, "bad") {
		t.Fatalf("Provision: %v, want InvalidTemplate about parameter 'bad'", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
