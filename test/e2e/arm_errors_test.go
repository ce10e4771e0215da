package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestARMBadInput sends malformed requests and checks each gets the ARM
// error envelope, the right status and a message that says what to fix.
func TestARMBadInput(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.HTTP.MaxBodyBytes = 64 << 10 }))
	sub := s.App.Installation().SubscriptionID
	rg := "/subscriptions/" + sub + "/resourcegroups/rg-bad"
	c := s.HTTPClient()
	token := s.Token(t, testserver.ARMResource)
	cases := []struct {
		name, method, path, body string
		noAuth                   bool
		status                   int
		code                     string
		mentions                 string
	}{
		{"malformed JSON", "PUT", rg + "?api-version=2021-04-01", `{"location": "westus",`, false, 400, "InvalidRequestContent", "JSON"},
		{"JSON that is not an object", "PUT", rg + "?api-version=2021-04-01", `[1,2]`, false, 400, "InvalidRequestContent", "JSON object"},
		{"missing location", "PUT", rg + "?api-version=2021-04-01", `{}`, false, 400, "LocationRequired", "location"},
		{"unknown location", "PUT", rg + "?api-version=2021-04-01", `{"location":"moon"}`, false, 400, "LocationNotAvailableForResourceGroup", "westus"},
		{"bad group name", "PUT", "/subscriptions/" + sub + "/resourcegroups/bad%20name!?api-version=2021-04-01", `{"location":"westus"}`, false, 400, "InvalidResourceGroup", "1-90"},
		{"unknown api-version", "GET", rg + "?api-version=2099-01-01", "", false, 400, "InvalidApiVersionParameter", "2021-04-01"},
		{"missing api-version", "GET", rg, "", false, 400, "MissingApiVersionParameter", "api-version"},
		{"unknown namespace", "GET", rg + "/providers/Microsoft.Nope/widgets/w1?api-version=2021-04-01", "", false, 400, "InvalidResourceNamespace", "Microsoft.Nope"},
		{"oversized body", "PUT", rg + "?api-version=2021-04-01", `{"location":"westus","tags":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`, false, 413, "RequestEntityTooLarge", "limit"},
		{"wrong method", "POST", rg + "?api-version=2021-04-01", "", false, 405, "HttpMethodNotSupported", "POST"},
		{"wrong method on subscriptions", "DELETE", "/subscriptions?api-version=2021-04-01", "", false, 405, "HttpMethodNotSupported", "DELETE"},
		{"unknown subscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01", "", false, 404, "SubscriptionNotFound", "00000000"},
		{"missing group", "GET", rg + "?api-version=2021-04-01", "", false, 404, "ResourceGroupNotFound", "rg-bad"},
		{"no token", "GET", "/subscriptions?api-version=2021-04-01", "", true, 401, "AuthenticationFailed", "Authorization"},
		{"unknown path", "GET", "/nothing-here", "", false, 404, "NotFound", "/subscriptions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.Endpoint+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.noAuth {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var env struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("body is not the ARM error envelope: %s", b)
			}
			if resp.StatusCode != tc.status || env.Error.Code != tc.code {
				t.Errorf("got %d %s, want %d %s (%s)", resp.StatusCode, env.Error.Code, tc.status, tc.code, env.Error.Message)
			}
			if !strings.Contains(env.Error.Message, tc.mentions) {
				t.Errorf("message %q should mention %q", env.Error.Message, tc.mentions)
			}
		})
	}
	// Nothing of the refused writes was stored.
	resp, err := c.Do(mustRequest(t, token, "GET", s.Endpoint+rg+"?api-version=2021-04-01"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a refused PUT left a group behind: %s", resp.Status)
	}
}

// TestARMQuirksOfRealClients covers what az and the SDKs send that a strict
// server would refuse: "//" in paths, other letter cases and az's malformed
// If-Match header.
func TestARMQuirksOfRealClients(t *testing.T) {
	s := testserver.Start(t)
	sub := s.App.Installation().SubscriptionID
	c := s.HTTPClient()
	token := s.Token(t, testserver.ARMResource)
	put := mustRequest(t, token, "PUT", s.Endpoint+"/subscriptions/"+sub+"/resourcegroups/Quirks?api-version=2021-04-01")
	put.Body = io.NopCloser(strings.NewReader(`{"location":"West US"}`))
	resp, err := c.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %s", resp.Status)
	}
	for _, path := range []string{
		"/subscriptions/" + sub + "/resourceGroups/quirks",
		"//subscriptions//" + sub + "//RESOURCEGROUPS/QUIRKS/",
	} {
		resp, err := c.Do(mustRequest(t, token, "GET", s.Endpoint+path+"?api-version=2021-04-01"))
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Name, Location string }
		json.NewDecoder(resp.Body).Decode(&g) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 || g.Name != "Quirks" || g.Location != "westus" {
			t.Errorf("GET %s = %s %+v, want the group as first spelled", path, resp.Status, g)
		}
	}
	resp, err = c.Do(mustRequest(t, token, "HEAD", s.Endpoint+"/subscriptions/"+sub+"/resourcegroups/quirks?api-version=2021-04-01"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("HEAD existing group = %s, want 204", resp.Status)
	}
}

func mustRequest(t *testing.T, token, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
