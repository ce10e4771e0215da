package cli

import (
	"bytes"
	"errors"
	"testing"
)

// The expected outputs below are what az 2.45 (knack + tabulate) printed for
// the same values, checked side by side against a running Outpost; the e2e
// test TestCLIMatchesAz keeps comparing the two live.

func render(t *testing.T, p printer, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.print(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sampleGroups() []any {
	return []any{
		map[string]any{"id": "/subscriptions/s/resourceGroups/rg1", "name": "rg1", "location": "westus",
			"properties": map[string]any{"provisioningState": "Succeeded"}, "tags": nil, "type": "Microsoft.Resources/resourceGroups"},
		map[string]any{"id": "/subscriptions/s/resourceGroups/rg2", "name": "rg2", "location": "eastus",
			"properties": map[string]any{"provisioningState": "Succeeded"}, "tags": map[string]any{"a": "b"}, "type": "Microsoft.Resources/resourceGroups"},
	}
}

func TestTableWithTransformer(t *testing.T) {
	got := render(t, printer{format: "table", table: groupTable}, sampleGroups())
	want := "Name    Location    Status\n" +
		"------  ----------  ---------\n" +
		"rg1     westus      Succeeded\n" +
		"rg2     eastus      Succeeded\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTableAutoColumns(t *testing.T) {
	// No transformer: scalar fields only, sorted, id/type/etag left out,
	// headers capitalised, bools as Python prints them.
	v := map[string]any{"name": "x", "id": "/i", "type": "T", "etag": "e", "enabled": true, "count": 3,
		"nested": map[string]any{"a": 1}, "list": []any{1}, "gone": nil}
	got := render(t, printer{format: "table"}, v)
	want := "Count    Enabled    Name\n" +
		"-------  ---------  ------\n" +
		"3        True       x\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestQueryKeepsHashOrderInTableAndTSV(t *testing.T) {
	p := printer{format: "table", query: "[].{Where:location, Name:name}", table: groupTable}
	got := render(t, p, sampleGroups())
	want := "Where    Name\n" +
		"-------  ------\n" +
		"westus   rg1\n" +
		"eastus   rg2\n"
	if got != want {
		t.Errorf("table got\n%s\nwant\n%s", got, want)
	}
	p.format = "tsv"
	if got, want := render(t, p, sampleGroups()), "westus\trg1\neastus\trg2\n"; got != want {
		t.Errorf("tsv got %q want %q", got, want)
	}
}

func TestTSVWithoutQuery(t *testing.T) {
	// Sorted keys; a nested object prints as nothing, a list as its length,
	// null as None.
	got := render(t, printer{format: "tsv"}, sampleGroups())
	want := "/subscriptions/s/resourceGroups/rg1\twestus\trg1\t\tNone\tMicrosoft.Resources/resourceGroups\n" +
		"/subscriptions/s/resourceGroups/rg2\teastus\trg2\t\t\tMicrosoft.Resources/resourceGroups\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestJSONSortedUnescaped(t *testing.T) {
	got := render(t, printer{format: "json"}, map[string]any{"b": "<x>&", "a": 1})
	want := "{\n  \"a\": 1,\n  \"b\": \"<x>&\"\n}\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestModelFillsNullsAndAddsResourceGroup(t *testing.T) {
	v := map[string]any{"id": "/subscriptions/s/resourceGroups/rg/providers/N/t/x", "name": "x", "sku": map[string]any{"name": "S1"}}
	got := render(t, printer{format: "json", model: []string{"id", "name", "tags", "sku", "sku.tier"}}, v)
	want := "{\n  \"id\": \"/subscriptions/s/resourceGroups/rg/providers/N/t/x\",\n  \"name\": \"x\",\n" +
		"  \"resourceGroup\": \"rg\",\n  \"sku\": {\n    \"name\": \"S1\",\n    \"tier\": null\n  },\n  \"tags\": null\n}\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNullResultPrintsNothing(t *testing.T) {
	for _, f := range []string{"json", "table", "tsv"} {
		if got := render(t, printer{format: f, query: "[0].tags"}, sampleGroups()); got != "" {
			t.Errorf("-o %s printed %q for a null result", f, got)
		}
	}
}

func TestTableUnavailable(t *testing.T) {
	var b bytes.Buffer
	err := (&printer{format: "table"}).print(&b, map[string]any{"nested": map[string]any{"a": 1}})
	if !errors.Is(err, errNoTable) {
		t.Fatalf("err %v, want the table-unavailable error", err)
	}
}

func TestBadQueryIsUsageError(t *testing.T) {
	var b bytes.Buffer
	err := (&printer{format: "json", query: "[?"}).print(&b, sampleGroups())
	if exitCode(err) != exitUsage {
		t.Fatalf("err %v: exit %d, want %d", err, exitCode(err), exitUsage)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{usageErrorf("x"), exitUsage},
		{&apiError{Status: 404, Code: "ResourceGroupNotFound"}, exitNotFound},
		{&apiError{Status: 400, Code: "DeviceNotFound"}, exitNotFound},
		{&apiError{Status: 403, Code: "AuthorizationFailed"}, exitError},
		{errors.New("boom"), exitError},
	} {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
}
