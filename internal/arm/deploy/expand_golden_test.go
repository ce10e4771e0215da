package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

// The expansion goldens live in testdata/expand/NNN-name.json, one case a
// file:
//
//	{
//	  "description": "what the case shows",
//	  "scope": {...},          // optional, see expandScope
//	  "template": {...},       // an ARM template
//	  "parameters": {...},     // values by name, not {"value": …} wrappers
//	  "references": {"<resource id>": {...}},       // what GET returns
//	  "lists": {"<action lower-case> <resource id>": {...}},
//	  "want": {"resources": [...], "skipped": [...], "outputs": {...}}
//	  -- or --
//	  "wantError": {"code": "InvalidTemplate", "messageContains": ["…"]}
//	}
//
// "want" is compared with the JSON form of deploy.Expansion (members that
// are empty may be left out; dependsOn is compared as a set). Every golden is what Azure Resource Manager
// does with the template, not what the code happens to do:
// OUTPOST_UPDATE_GOLDEN=1 rewrites "want" from the actual output while
// writing a case (error cases are never rewritten),
// and every rewritten value must then be checked by hand against ARM's
// documented behaviour.
//
//	go test ./internal/arm/deploy -run TestExpandGolden

// minExpandCases keeps the suite from silently shrinking.
const minExpandCases = 60

// Fixed scope of every case unless its file says otherwise.
const (
	defaultSubscription   = "87d64d6d-6d17-4ad7-b507-16d9bc498781"
	defaultTenant         = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	defaultResourceGroup  = "rg"
	defaultLocation       = "westus"
	defaultDeploymentName = "golden"
)

// goldenNow is utcNow() in every case.
var goldenNow = time.Date(2024, 5, 1, 12, 30, 45, 0, time.UTC)

// expandScope places a case's deployment. Without a "scope" member a case
// deploys to resource group "rg"; with one, an omitted or empty
// resourceGroup means a subscription deployment and every other omitted
// field takes its default.
type expandScope struct {
	Subscription   string            `json:"subscription"`
	ResourceGroup  string            `json:"resourceGroup"`
	Location       string            `json:"location"`
	GroupTags      map[string]string `json:"groupTags"`
	DeploymentName string            `json:"deploymentName"`
	TenantID       string            `json:"tenantId"`
	Mode           string            `json:"mode"`
}

type expandCase struct {
	Description string          `json:"description"`
	Scope       *expandScope    `json:"scope"`
	Template    any             `json:"template"`
	Parameters  any             `json:"parameters"`
	References  any             `json:"references"`
	Lists       any             `json:"lists"`
	Want        json.RawMessage `json:"want"`
	WantError   *struct {
		Code            string   `json:"code"`
		MessageContains []string `json:"messageContains"`
	} `json:"wantError"`
}

func TestExpandGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "expand", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < minExpandCases {
		t.Errorf("found %d expansion cases in testdata/expand, want at least %d", len(files), minExpandCases)
	}
	update := os.Getenv("OUTPOST_UPDATE_GOLDEN") == "1"
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := decodeExpandCase(raw)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, err := deploy.Expand(c.input())
			if c.WantError != nil {
				checkExpandError(t, got, err, c)
				return
			}
			if err != nil {
				t.Fatalf("%s\nExpand failed: %v", c.Description, err)
			}
			gotJSON := canonicalExpansion(t, got)
			if update {
				if err := os.WriteFile(file, replaceWant(t, raw, gotJSON), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			var want any
			if err := json.Unmarshal(c.Want, &want); err != nil {
				t.Fatalf("want: %v", err)
			}
			want = dropEmpty(want)
			if !jsonEqual(want, gotJSON) {
				t.Errorf("%s\n--- got\n%s\n--- want\n%s", c.Description, indented(gotJSON), indented(want))
			}
		})
	}
}

func decodeExpandCase(raw []byte) (*expandCase, error) {
	var c expandCase
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if (c.Want == nil) == (c.WantError == nil) {
		return nil, errors.New(`a case needs exactly one of "want" and "wantError"`)
	}
	if c.Description == "" {
		return nil, errors.New(`a case needs a "description"`)
	}
	if _, ok := c.Template.(map[string]any); !ok {
		return nil, errors.New(`"template" must be an object`)
	}
	return &c, nil
}

// input builds Expand's input: the case's scope over the defaults, and
// reference()/list*() answered from the case's references and lists.
func (c *expandCase) input() deploy.ExpandInput {
	in := deploy.ExpandInput{
		Template:       expr.Normalize(c.Template).(map[string]any),
		Subscription:   defaultSubscription,
		ResourceGroup:  defaultResourceGroup,
		Location:       defaultLocation,
		DeploymentName: defaultDeploymentName,
		TenantID:       defaultTenant,
		Now:            func() time.Time { return goldenNow },
	}
	if p, ok := expr.Normalize(c.Parameters).(map[string]any); ok {
		in.Parameters = p
	}
	if s := c.Scope; s != nil {
		in.ResourceGroup = s.ResourceGroup
		in.GroupTags = s.GroupTags
		in.Mode = s.Mode
		in.Subscription = or(s.Subscription, in.Subscription)
		in.Location = or(s.Location, in.Location)
		in.DeploymentName = or(s.DeploymentName, in.DeploymentName)
		in.TenantID = or(s.TenantID, in.TenantID)
	}
	references := lowerKeys(expr.Normalize(c.References))
	in.Reference = func(id string, req expr.ReferenceRequest) (any, error) {
		res, ok := references[strings.ToLower(id)]
		if !ok {
			return nil, resourceNotFound(id)
		}
		if req.Full {
			return res, nil
		}
		m, _ := res.(map[string]any)
		if props, ok := m["properties"]; ok {
			return props, nil
		}
		return map[string]any{}, nil
	}
	lists := lowerKeys(expr.Normalize(c.Lists))
	in.List = func(id string, req expr.ListRequest) (any, error) {
		res, ok := lists[strings.ToLower(req.Action+" "+id)]
		if !ok {
			return nil, resourceNotFound(id)
		}
		return res, nil
	}
	return in
}

// resourceNotFound is what the resource manager answers for a missing
// resource.
func resourceNotFound(rawID string) error {
	id, err := arm.ParseResourceID(rawID)
	if err != nil {
		return fmt.Errorf("'%s' is not a resource id: %w", rawID, err)
	}
	return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The Resource '%s/%s' under resource group '%s' was not found.",
		id.FullType(), strings.Join(id.Names, "/"), id.ResourceGroup)
}

func checkExpandError(t *testing.T, got deploy.Expansion, err error, c *expandCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s\nExpand succeeded, want error %s:\n%s", c.Description, c.WantError.Code, indented(canonicalExpansion(t, got)))
	}
	var ae *arm.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s\nExpand failed with %T %v, want an *arm.Error", c.Description, err, err)
	}
	if ae.Code != c.WantError.Code {
		t.Errorf("%s\ncode %q, want %q (message: %s)", c.Description, ae.Code, c.WantError.Code, ae.Message)
	}
	for _, frag := range c.WantError.MessageContains {
		if !strings.Contains(ae.Message, frag) {
			t.Errorf("%s\nmessage lacks %q:\n%s", c.Description, frag, ae.Message)
		}
	}
}

// canonicalExpansion is the expansion as a client would decode its JSON,
// without members that are empty.
func canonicalExpansion(t *testing.T, e deploy.Expansion) any {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return dropEmpty(v)
}

// dropEmpty removes the top-level members that are null or empty, so a
// golden may leave out "skipped" or "outputs", and "resources": [] equals
// none at all. It also sorts each resource's dependsOn: ARM's dependencies
// are a set, and the order implicit ones are found in is not part of what
// a golden pins.
func dropEmpty(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	resources, _ := m["resources"].([]any)
	for _, r := range resources {
		if deps, ok := r.(map[string]any)["dependsOn"].([]any); ok {
			sort.Slice(deps, func(i, j int) bool { return fmt.Sprint(deps[i]) < fmt.Sprint(deps[j]) })
		}
	}
	out := map[string]any{}
	for k, x := range m {
		switch t := x.(type) {
		case nil:
			continue
		case []any:
			if len(t) == 0 {
				continue
			}
		case map[string]any:
			if len(t) == 0 {
				continue
			}
		}
		out[k] = x
	}
	return out
}

func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

func indented(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// replaceWant returns the case file with its "want" value replaced, the
// rest of the file byte for byte as it was.
func replaceWant(t *testing.T, raw []byte, want any) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("the case is not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		start := dec.InputOffset()
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
		if key != "want" {
			continue
		}
		end := dec.InputOffset()
		at := start + int64(bytes.Index(raw[start:end], value))
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // SAS tokens and URLs stay readable
		enc.SetIndent("  ", "  ")
		if err := enc.Encode(want); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		out.Write(raw[:at])
		out.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
		out.Write(raw[end:])
		return out.Bytes()
	}
	t.Fatal(`the case has no "want" member to rewrite`)
	return nil
}

func lowerKeys(v any) map[string]any {
	out := map[string]any{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[strings.ToLower(k)] = x
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
