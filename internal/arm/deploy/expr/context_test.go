package expr

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestNilAndZeroContext(t *testing.T) {
	if v, err := EvalString("[add(1, 2)]", nil); err != nil || v != int64(3) {
		t.Errorf("nil context: %v, %v", v, err)
	}
	_, err := EvalString("[parameters('x')]", &Context{})
	if err == nil || err.Error() != "The template parameter 'x' is not found. The template declares no parameters." {
		t.Errorf("missing parameter: %v", err)
	}
	_, err = EvalString("[reference('x')]", nil)
	if err == nil || !strings.Contains(err.Error(), "no deployment engine is attached") {
		t.Errorf("reference without engine: %v", err)
	}
	if v, err := EvalString("[resourceId('Microsoft.Web/sites', 'a')]", nil); err != nil || v != "/providers/Microsoft.Web/sites/a" {
		t.Errorf("resourceId without scope: %v, %v", v, err)
	}
}

func TestEvalErrorWrapsHookErrors(t *testing.T) {
	notFound := errors.New("resource not found")
	ctx := &Context{Reference: func(ReferenceRequest) (any, error) { return nil, notFound }}
	_, err := EvalString("[concat('x', reference('hub').hostName)]", ctx)
	if !errors.Is(err, notFound) {
		t.Fatalf("errors.Is(%v, notFound) = false", err)
	}
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Function != "reference" || ee.Pos != 13 {
		t.Fatalf("EvalError = %+v", ee)
	}
	if err.Error() != "Unable to evaluate template language function 'reference': resource not found" {
		t.Errorf("message: %v", err)
	}
}

func TestReferenceRequest(t *testing.T) {
	var got []ReferenceRequest
	var lists []ListRequest
	ctx := &Context{
		Site: SiteResourceProperties,
		Reference: func(r ReferenceRequest) (any, error) {
			got = append(got, r)
			return map[string]any{"principalId": "p"}, nil
		},
		List: func(r ListRequest) (any, error) {
			lists = append(lists, r)
			return map[string]any{"value": "k"}, nil
		},
	}
	for _, s := range []string{"[reference('a')]", "[reference('b', '2021-01-01')]", "[reference('c', '2021-01-01', 'FULL')]", "[listSecrets('d', '2020-01-01', createObject('x', 1))]"} {
		if _, err := EvalString(s, ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []ReferenceRequest{{Target: "a"}, {Target: "b", APIVersion: "2021-01-01"}, {Target: "c", APIVersion: "2021-01-01", Full: true}}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("reference requests = %+v", got)
	}
	if len(lists) != 1 || lists[0].Action != "listSecrets" || lists[0].Target != "d" || !deepEqual(lists[0].Body, map[string]any{"x": int64(1)}) {
		t.Errorf("list requests = %+v", lists)
	}
}

func TestVariablesAreEvaluatedOnceAndConcurrently(t *testing.T) {
	var calls atomic.Int64
	vars := NewVariables(map[string]any{
		"base":    "[contoso.count()]",
		"derived": "[concat(string(variables('base')), '-', variables('other'))]",
		"other":   "[toUpper(variables('lower'))]",
		"lower":   "x",
	})
	ctx := &Context{
		Variables: vars,
		UserFunction: func(*Context, string, []any) (any, error) {
			calls.Add(1)
			return int64(7), nil
		},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := EvalString("[variables('derived')]", ctx)
			if err == nil && v != "7-X" {
				err = errors.New("wrong value " + stringify(v))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Concurrent first uses may race to compute a value; afterwards it is
	// remembered.
	before := calls.Load()
	if _, err := EvalString("[variables('base')]", ctx); err != nil || calls.Load() != before {
		t.Errorf("variable recomputed: %d -> %d, %v", before, calls.Load(), err)
	}
}

func TestCycleDetectionIsPerEvaluation(t *testing.T) {
	// Two goroutines evaluating the same variable must not see each other
	// as a cycle.
	vars := NewVariables(map[string]any{"a": "[variables('b')]", "b": "[range(0, 50)]"})
	ctx := &Context{Variables: vars}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := EvalString("[length(variables('a'))]", ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestCopyIndexPlacement(t *testing.T) {
	ctx := (&Context{}).WithCopyIndex("disks", 2)
	if v, err := EvalString("[copyIndex('disks', 1)]", ctx); err != nil || v != int64(3) {
		t.Errorf("named loop: %v, %v", v, err)
	}
	_, err := EvalString("[copyIndex()]", ctx)
	if err == nil || !strings.Contains(err.Error(), "name the loop: copyIndex('disks')") {
		t.Errorf("copyIndex() in a property loop: %v", err)
	}
	_, err = EvalString("[copyIndex()]", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "The template function 'copyIndex' is not expected at this location.") {
		t.Errorf("copyIndex() outside loops: %v", err)
	}
	inner := (&Context{}).WithResourceCopyIndex("vms", 4).WithCopyIndex("nics", 1)
	if v, err := EvalString("[createArray(copyIndex(), copyIndex('nics'), copyIndex('VMS'))]", inner); err != nil || !deepEqual(v, []any{int64(4), int64(1), int64(4)}) {
		t.Errorf("nested loops: %v, %v", v, err)
	}
}

func TestEvalValue(t *testing.T) {
	var tpl map[string]any
	if err := json.Unmarshal([]byte(`{
		"name": "[parameters('name')]",
		"sku": {"name": "S1", "capacity": 1},
		"identity": {"userAssignedIdentities": {"[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities/', 'id1')]": {}}},
		"literal": "[[not evaluated]",
		"nothing": null,
		"properties": {
			"copy": [{"name": "routes", "count": "[length(parameters('routes'))]", "input": {"name": "[parameters('routes')[copyIndex('routes')]]", "priority": "[add(copyIndex('routes'), 100)]"}}]
		}
	}`), &tpl); err != nil {
		t.Fatal(err)
	}
	ctx := &Context{
		Subscription:  &Subscription{ID: "s"},
		ResourceGroup: &ResourceGroup{Name: "rg"},
		Parameters:    StaticValues{"name": "hub1", "routes": []any{"a", "b"}},
	}
	got, err := EvalValue(tpl, ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name":     "hub1",
		"sku":      map[string]any{"name": "S1", "capacity": int64(1)},
		"identity": map[string]any{"userAssignedIdentities": map[string]any{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1": map[string]any{}}},
		"literal":  "[not evaluated]",
		"nothing":  nil,
		"properties": map[string]any{"routes": []any{
			map[string]any{"name": "a", "priority": int64(100)},
			map[string]any{"name": "b", "priority": int64(101)},
		}},
	}
	if !deepEqual(got, want) {
		t.Errorf("got  %s\nwant %s", jsonText(got), jsonText(want))
	}

	_, err = EvalValue(map[string]any{"a": map[string]any{"b": []any{"ok", "[div(1, 0)]"}}}, nil)
	if err == nil || err.Error() != "a.b[1]: Unable to evaluate template language function 'div': attempted to divide by zero" {
		t.Errorf("error path: %v", err)
	}
	_, err = EvalValue(map[string]any{"[add(1, 1)]": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "evaluated to a value of type 'Integer', not a string") {
		t.Errorf("non-string key: %v", err)
	}
	_, err = EvalValue(map[string]any{"copy": []any{map[string]any{"name": "x", "count": 801, "input": 1}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "it must be an integer from 0 to 800") {
		t.Errorf("copy count limit: %v", err)
	}
}

func TestBudget(t *testing.T) {
	// Each step doubles the string: without a budget this exhausts memory.
	s := "[reduce(range(0, 64), 'ab', lambda('cur', 'n', concat(lambdaVariables('cur'), lambdaVariables('cur'))))]"
	_, err := EvalString(s, nil)
	if err == nil || !strings.Contains(err.Error(), "too expensive to evaluate") {
		t.Errorf("doubling: %v", err)
	}
	nested := "[length(map(range(0, 10000), lambda('i', range(0, 10000))))]"
	if _, err := EvalString(nested, nil); err == nil || !strings.Contains(err.Error(), "too expensive") {
		t.Errorf("nested ranges: %v", err)
	}
	// A fresh evaluation gets a fresh budget.
	if v, err := EvalString("[length(range(0, 10000))]", nil); err != nil || v != int64(10000) {
		t.Errorf("after budget errors: %v, %v", v, err)
	}
}

func TestEnvironmentIsConfigurable(t *testing.T) {
	env := AzureCloud()
	env.Name = "Outpost"
	env.ResourceManager = "https://outpost.local:8443/"
	env.Authentication.LoginEndpoint = "https://outpost.local:8443/login/"
	env.Suffixes["storage"] = "storage.outpost.local"
	ctx := &Context{Environment: env}
	v, err := EvalString("[createArray(environment().name, environment().resourceManager, environment().authentication.loginEndpoint, environment().suffixes.storage)]", ctx)
	want := []any{"Outpost", "https://outpost.local:8443/", "https://outpost.local:8443/login/", "storage.outpost.local"}
	if err != nil || !deepEqual(v, want) {
		t.Errorf("environment() = %v, %v", v, err)
	}
	if AzureCloud().Name != "AzureCloud" {
		t.Errorf("AzureCloud() shares state")
	}
}

func TestSites(t *testing.T) {
	ctx := &Context{Site: SiteParameterDefault}
	if _, err := EvalString("[utcNow()]", ctx); err != nil {
		t.Errorf("utcNow in a parameter default: %v", err)
	}
	_, err := EvalString("[utcNow()]", ctx.WithSite(SiteOutputs))
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Function != "utcNow" || !strings.HasPrefix(err.Error(), "The template function 'utcNow' is not expected at this location (outputs).") {
		t.Errorf("utcNow in outputs: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`{"i": 3, "f": 1.5, "big": 1e20, "a": [1, "x", true, null]}`), &v); err != nil {
		t.Fatal(err)
	}
	got := Normalize(v)
	want := map[string]any{"i": int64(3), "f": 1.5, "big": 1e20, "a": []any{int64(1), "x", true, nil}}
	if !deepEqual(got, want) || got.(map[string]any)["i"] != int64(3) {
		t.Errorf("Normalize = %#v", got)
	}
	if !deepEqual(Normalize(map[string]string{"k": "v"}), map[string]any{"k": "v"}) || Normalize([]string{"a"}).([]any)[0] != "a" || Normalize(7) != int64(7) {
		t.Errorf("Normalize of Go types is wrong")
	}
	if n := Normalize(json.Number("12")); n != int64(12) {
		t.Errorf("json.Number: %#v", n)
	}
}
