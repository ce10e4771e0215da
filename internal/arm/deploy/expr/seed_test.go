package expr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// seedDir holds the shared seed documents (prose with ARM templates in
// it), read at run time and never copied into the repository.
const seedDir = "../../../../../shared/seed"

// TestSeedTemplates finds the ARM templates in the seed documents and
// checks that every expression in them parses, uses only implemented
// functions, and evaluates against a resource group deployment context.
func TestSeedTemplates(t *testing.T) {
	entries, err := os.ReadDir(seedDir)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("seed folder %s is missing in CI: %v", seedDir, err)
		}
		t.Skipf("seed folder %s not present: %v", seedDir, err)
	}
	templates := 0
	used := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(seedDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for i, tpl := range extractTemplates(string(raw)) {
			templates++
			t.Run(fmt.Sprintf("%s/template%d", e.Name(), i), func(t *testing.T) {
				checkSeedTemplate(t, tpl, used)
			})
		}
	}
	if templates == 0 {
		t.Fatalf("no ARM templates found in %s", seedDir)
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("%d templates; functions used: %s", templates, strings.Join(names, ", "))
}

// extractTemplates decodes every JSON object that starts a line and looks
// like a deployment template.
func extractTemplates(doc string) []map[string]any {
	var out []map[string]any
	for off := 0; off < len(doc); {
		i := strings.Index(doc[off:], "\n{")
		if i < 0 {
			break
		}
		start := off + i + 1
		dec := json.NewDecoder(strings.NewReader(doc[start:]))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			off = start + 1
			continue
		}
		if _, ok := v["resources"]; ok {
			out = append(out, Normalize(v).(map[string]any))
		}
		off = start + int(dec.InputOffset())
	}
	return out
}

func checkSeedTemplate(t *testing.T, tpl map[string]any, used map[string]bool) {
	decls, _ := tpl["parameters"].(map[string]any)
	supplied := map[string]any{}
	for name, d := range decls {
		decl, _ := d.(map[string]any)
		if _, ok := decl["defaultValue"]; ok {
			continue
		}
		supplied[name] = sampleValue(decl["type"])
	}
	vars, _ := tpl["variables"].(map[string]any)
	ctx := &Context{
		Tenant:        Tenant{ID: "72f988bf-86f1-41af-91ab-2d7cd011db47"},
		Subscription:  &Subscription{ID: "00000000-0000-0000-0000-000000000001"},
		ResourceGroup: &ResourceGroup{Name: "seed-rg", Location: "westeurope"},
		Deployment:    Deployment{Name: "seed"},
		Parameters:    NewParameters(decls, supplied),
		Variables:     NewVariables(vars),
	}
	count := 0
	walkStrings(tpl, "", func(path, s string) {
		if !IsExpression(s) {
			return
		}
		count++
		e, err := Parse(s)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		runtime := false
		for _, c := range Calls(e) {
			if !c.Builtin() {
				t.Errorf("%s: %s calls %s, which is not a library function", path, s, c.Name)
			}
			name := c.Name
			if f := lookupFunction(name); f != nil {
				name = f.name
			}
			used[name] = true
			if strings.EqualFold(name, "reference") || strings.HasPrefix(strings.ToLower(name), "list") {
				runtime = true
			}
		}
		// reference() and list*() need a deployed resource; the rest must
		// evaluate here.
		if runtime {
			return
		}
		v, err := e.Eval(ctx)
		if err != nil {
			t.Errorf("%s: %s: %v", path, s, err)
			return
		}
		if strings.Contains(strings.ToLower(s), "resourceid(") {
			id, _ := v.(string)
			if !strings.HasPrefix(id, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/seed-rg/providers/") || strings.Contains(id, "//") {
				t.Errorf("%s: %s = %q, want a resource id in the deployment's group", path, s, v)
			}
		}
	})
	if count == 0 {
		t.Errorf("template has no expressions")
	}
	// The whole resources section evaluates as a JSON value too (keys that
	// are expressions included).
	if _, err := EvalValue(tpl["resources"], ctx); err != nil && !errors.As(err, new(*ParseError)) {
		t.Errorf("EvalValue(resources): %v", err)
	}
}

func sampleValue(typ any) any {
	switch strings.ToLower(stringify(typ)) {
	case "int":
		return int64(1)
	case "bool":
		return true
	case "object", "secureobject":
		return map[string]any{}
	case "array":
		return []any{}
	}
	return "seed-value"
}

// walkStrings calls fn for every string value and object key in v.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch t := v.(type) {
	case string:
		fn(path, t)
	case []any:
		for i, e := range t {
			walkStrings(e, path+"["+stringify(int64(i))+"]", fn)
		}
	case map[string]any:
		for _, k := range sortedKeys(t) {
			fn(path+"{key}", k)
			walkStrings(t[k], join(path, k), fn)
		}
	}
}
