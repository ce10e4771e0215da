package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// outpostCLI runs the outpost binary against s with the environment
// `outpost env` prints and decodes its JSON output (when any).
func outpostCLI(t *testing.T, bin string, s *testserver.Server, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var v map[string]any
	if len(out) > 0 {
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("outpost %s printed %q: %v", strings.Join(args, " "), out, err)
		}
	}
	return v
}

type armCall struct {
	t     *testing.T
	s     *testserver.Server
	token string
}

func (c armCall) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.s.Endpoint+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.s.HTTPClient().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// TestRBACOnTheControlPlane checks that every control-plane call is
// authorized by role assignments: a new service principal can do nothing, a
// Reader can read but not write, a removed assignment stops working at once,
// and a deleted principal's token is refused.
func TestRBACOnTheControlPlane(t *testing.T) {
	bin := testserver.BuildBinary(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		sub := s.App.Installation().SubscriptionID
		op := armCall{t, s, s.Token(t, testserver.ARMResource)}
		if code, _ := op.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg-rbac?api-version=2021-04-01", `{"location":"westus"}`); code != 201 {
			t.Fatalf("operator create group: %d", code)
		}
		sp := outpostCLI(t, bin, s, "ad", "sp", "create", "--name", "rbac-tester")
		appID, secret, oid := sp["appId"].(string), sp["password"].(string), sp["objectId"].(string)
		listed := outpostCLI(t, bin, s, "ad", "sp", "show", "--id", appID)
		if listed["objectId"] != oid || listed["password"] != nil {
			t.Fatalf("ad sp show = %v", listed)
		}
		tester := armCall{t, s, testserver.ClientCredentialsToken(t, s.HTTPClient(), s.Endpoint, s.App.Installation().TenantID, appID, secret, testserver.ARMResource)}
		group := "/subscriptions/" + sub + "/resourcegroups/rg-rbac?api-version=2021-04-01"

		code, body := tester.do("GET", group, "")
		if code != 403 || errorCode(body) != "AuthorizationFailed" || !strings.Contains(body["error"].(map[string]any)["message"].(string), "Microsoft.Resources/subscriptions/resourceGroups/read") {
			t.Fatalf("no role: GET group = %d %v", code, body)
		}

		// A token for another audience is refused as such.
		storage := armCall{t, s, testserver.ClientCredentialsToken(t, s.HTTPClient(), s.Endpoint, s.App.Installation().TenantID, appID, secret, "https://storage.azure.com/")}
		if code, body := storage.do("GET", group, ""); code != 401 || errorCode(body) != "InvalidAuthenticationTokenAudience" {
			t.Errorf("storage token on ARM = %d %v", code, body)
		}

		assignment := "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString() + "?api-version=2022-04-01"
		reader := "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
		if code, body := op.do("PUT", assignment, `{"properties":{"roleDefinitionId":"`+reader+`","principalId":"`+oid+`"}}`); code != 201 {
			t.Fatalf("assign Reader: %d %v", code, body)
		}
		if code, _ := tester.do("GET", group, ""); code != 200 {
			t.Errorf("Reader: GET group = %d, want 200", code)
		}
		if code, body := tester.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg-reader?api-version=2021-04-01", `{"location":"westus"}`); code != 403 || errorCode(body) != "AuthorizationFailed" {
			t.Errorf("Reader: PUT group = %d %v, want 403", code, body)
		}
		// Only the operator may hand out roles.
		if code, _ := tester.do("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
			`{"properties":{"roleDefinitionId":"`+reader+`","principalId":"`+oid+`"}}`); code != 403 {
			t.Errorf("Reader assigning a role = %d, want 403", code)
		}

		if code, _ := op.do("DELETE", assignment, ""); code != 200 {
			t.Fatalf("delete assignment: %d", code)
		}
		if code, _ := tester.do("GET", group, ""); code != 403 {
			t.Errorf("after the assignment was removed: GET group = %d, want 403", code)
		}

		// Deleting the principal kills its (cached) token and its assignments.
		if code, _ := op.do("PUT", assignment, `{"properties":{"roleDefinitionId":"`+reader+`","principalId":"`+oid+`"}}`); code != 201 {
			t.Fatalf("re-assign Reader: %d", code)
		}
		if code, _ := tester.do("GET", group, ""); code != 200 {
			t.Fatalf("warm the validation cache: %d", code)
		}
		outpostCLI(t, bin, s, "ad", "sp", "delete", "--id", appID)
		if code, body := tester.do("GET", group, ""); code != 401 || errorCode(body) != "InvalidAuthenticationToken" {
			t.Errorf("deleted principal's token = %d %v, want 401 InvalidAuthenticationToken", code, body)
		}
		_, list := op.do("GET", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+
			"principalId%20eq%20'"+oid+"'", "")
		if v, _ := list["value"].([]any); len(v) != 0 {
			t.Errorf("the deleted principal still has role assignments: %v", v)
		}
	})
}

// TestRolePropagationDelay rehearses Azure's "wait a few minutes": with a
// delay configured, a new assignment takes effect only after it.
func TestRolePropagationDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Identity.PropagationDelay = delay }))
	sub := s.App.Installation().SubscriptionID
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	p, secret, err := s.App.Directory().CreateServicePrincipal(t.Context(), "late")
	if err != nil {
		t.Fatal(err)
	}
	tester := armCall{t, s, testserver.ClientCredentialsToken(t, s.HTTPClient(), s.Endpoint, s.App.Installation().TenantID, p.AppID, secret, testserver.ARMResource)}
	reader := "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
	start := time.Now()
	if code, body := op.do("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"`+reader+`","principalId":"`+p.ObjectID+`"}}`); code != 201 {
		t.Fatalf("assign: %d %v", code, body)
	}
	groups := "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01"
	if code, _ := tester.do("GET", groups, ""); code != 403 && time.Since(start) < delay {
		t.Errorf("the assignment took effect before the propagation delay (%d)", code)
	}
	for {
		code, _ := tester.do("GET", groups, "")
		if code == 200 {
			if time.Since(start) < delay {
				t.Errorf("effective after %s, before the %s delay", time.Since(start), delay)
			}
			return
		}
		if time.Since(start) > 10*delay {
			t.Fatalf("the assignment never took effect: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
