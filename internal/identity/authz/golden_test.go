package authz

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// goldenFile is testdata/decisions.json: custom roles, assignments and the
// decisions expected of them. Add cases there, not here.
type goldenFile struct {
	Vars        map[string]string `json:"vars"`
	CustomRoles []RoleDefinition  `json:"customRoles"`
	Assignments []struct {
		Assignment
		Role string `json:"role"` // role name or GUID, resolved by the test
	} `json:"assignments"`
	Cases []goldenCase `json:"cases"`
}

type goldenCase struct {
	Name       string   `json:"name"`
	Principal  string   `json:"principal"`
	Action     string   `json:"action"`
	Data       bool     `json:"data"`
	Scope      string   `json:"scope"`
	Allow      bool     `json:"allow"`
	Assignment string   `json:"assignment"` // expected granting assignment
	Role       string   `json:"role"`       // expected granting role name
	Reason     []string `json:"reason"`     // substrings of the denial reason
}

func loadGolden(t testing.TB) (*Evaluator, []goldenCase) {
	t.Helper()
	raw, err := os.ReadFile("testdata/decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("testdata/decisions.json: %v", err)
	}
	expand := func(s string) string {
		return os.Expand(s, func(name string) string {
			v, ok := g.Vars[name]
			if !ok {
				t.Fatalf("testdata/decisions.json: unknown variable $%s in %q", name, s)
			}
			return v
		})
	}
	roles := append(BuiltInRoles(), g.CustomRoles...)
	byName := func(name string) string {
		for _, r := range roles {
			if strings.EqualFold(r.Name, name) || strings.EqualFold(r.ID, name) {
				return r.ID
			}
		}
		t.Fatalf("testdata/decisions.json: no role %q", name)
		return ""
	}
	assignments := make([]Assignment, 0, len(g.Assignments))
	for _, a := range g.Assignments {
		asg := a.Assignment
		asg.Scope = expand(asg.Scope)
		asg.RoleDefinitionID = expand(asg.RoleDefinitionID)
		if a.Role != "" {
			asg.RoleDefinitionID = byName(a.Role)
		}
		assignments = append(assignments, asg)
	}
	cases := g.Cases
	for i := range cases {
		c := &cases[i]
		c.Action, c.Scope = expand(c.Action), expand(c.Scope)
		for j := range c.Reason {
			c.Reason[j] = expand(c.Reason[j])
		}
	}
	return NewEvaluator(roles, assignments), cases
}

func TestGoldenDecisions(t *testing.T) {
	e, cases := loadGolden(t)
	if len(cases) < 40 {
		t.Fatalf("only %d golden cases", len(cases))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("duplicate case name %q", c.Name)
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			d := e.Authorize(c.Principal, c.Action, c.Data, c.Scope)
			if d.Allowed != c.Allow {
				t.Fatalf("Authorize(%s, %s, data=%v, %s) = %v, want allowed=%v", c.Principal, c.Action, c.Data, c.Scope, d, c.Allow)
			}
			if d.Allowed {
				if c.Assignment != "" && d.AssignmentID != c.Assignment {
					t.Errorf("granted by %s, want %s (%v)", d.AssignmentID, c.Assignment, d)
				}
				if c.Role != "" && d.RoleName != c.Role {
					t.Errorf("granted by role %q, want %q", d.RoleName, c.Role)
				}
				if d.Reason != "" {
					t.Errorf("allowed decision carries a reason: %q", d.Reason)
				}
				return
			}
			if !strings.HasPrefix(d.Reason, "principal "+c.Principal+" has no role assignment granting ") {
				t.Errorf("reason does not start with the standard sentence: %q", d.Reason)
			}
			for _, want := range c.Reason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason lacks %q:\n%s", want, d.Reason)
				}
			}
		})
	}
}
