package deploy

import (
	"reflect"
	"testing"
)

func TestParseLenient(t *testing.T) {
	// What az 2.45 sends for `az deployment group create --template-file`.
	body := `{"properties": {"parameters": {"a": {"value": "b"}}, "mode": "Incremental", template:{
  // a comment
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", /* block */
  "resources": [ {"name": "x//not a comment", "n": 3,}, ],
}}}`
	v, err := ParseLenient([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tpl := v.(map[string]any)["properties"].(map[string]any)["template"].(map[string]any)
	res := tpl["resources"].([]any)[0].(map[string]any)
	if res["name"] != "x//not a comment" || !reflect.DeepEqual(res["n"], int64(3)) {
		t.Fatalf("resources %v", res)
	}
	if _, err := ParseLenient([]byte(`{"a": }`)); err == nil {
		t.Fatal("invalid JSON accepted")
	}
}

func FuzzParseLenient(f *testing.F) {
	f.Add(`{template:{"a":1,}}`)
	f.Add(`{"a":"b\"c" /* x */}`)
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseLenient([]byte(s)) })
}
