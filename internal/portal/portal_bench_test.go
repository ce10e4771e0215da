package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// BenchmarkPortalPages measures how long the portal takes to answer its
// heaviest pages for a hub with 10,000 devices and 1,000 role assignments
// at its scope (loopback HTTPS round trip included). Never asserted; the
// figures are in docs/benchmarks.md.
//
//	go test -run '^$' -bench BenchmarkPortalPages -benchtime 50x ./internal/portal/
func BenchmarkPortalPages(b *testing.B) {
	s := testserver.Start(b)
	op := operatorAPI(b, s)
	sub := s.App.Installation().SubscriptionID
	op.must("PUT", "/subscriptions/"+sub+"/resourcegroups/bench?api-version=2021-04-01", `{"location":"westus"}`)
	hubID := "/subscriptions/" + sub + "/resourceGroups/bench/providers/Microsoft.Devices/IotHubs/benchhub"
	op.must("PUT", hubID+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"identity":{"type":"SystemAssigned"}}`)
	op.waitHub(hubID)

	// 10,000 devices through the hub's service API.
	keys := op.must("POST", hubID+"/listkeys?api-version=2023-06-30", "")
	host := "benchhub." + s.Config.DNSSuffix
	var token string
	for _, k := range keys["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			token, _ = sas.Sign(host, m["primaryKey"].(string), "iothubowner", time.Now().Add(time.Hour))
		}
	}
	const devices, workers = 10000, 32
	ids := make(chan int)
	var wg sync.WaitGroup
	client := s.HTTPClient()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				id := fmt.Sprintf("dev-%05d", i)
				req, _ := http.NewRequest("PUT", s.Endpoint+"/devices/"+id+"?api-version=2021-04-12", strings.NewReader(`{"deviceId":"`+id+`"}`))
				req.Host = host
				req.Header.Set("Authorization", token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("create %s: %s", id, resp.Status)
					return
				}
			}
		}()
	}
	for i := 0; i < devices; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()

	// 1,000 role assignments at the hub: 50 principals × 20 roles.
	defs := op.must("GET", hubID+"/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01", "")["value"].([]any)
	if len(defs) < 20 {
		b.Fatalf("only %d roles", len(defs))
	}
	ctx := context.Background()
	n := 0
	for p := 0; p < 50; p++ {
		sp, _, err := s.App.Directory().CreateServicePrincipal(ctx, fmt.Sprintf("bench-%d", p))
		if err != nil {
			b.Fatal(err)
		}
		for r := 0; r < 20; r++ {
			n++
			name := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
			op.must("PUT", hubID+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version=2022-04-01",
				`{"properties":{"roleDefinitionId":"`+defs[r].(map[string]any)["id"].(string)+`","principalId":"`+sp.ObjectID+`"}}`)
		}
	}

	login := s.App.Operator()
	br := newBrowser(b, s)
	br.signIn(login.ClientID, login.ClientSecret)
	// The resource manager's own answer to the list the IAM page reads, for
	// comparison: what any client (az role assignment list) waits for.
	b.Run("api-role-assignments", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			op.must("GET", hubID+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "")
		}
	})
	hub := url.QueryEscape(hubID)
	for _, p := range []struct{ name, path string }{
		{"home", "/portal/"},
		{"devices", "/portal/devices?id=" + hub},
		{"iam", "/portal/iam?id=" + hub},
		{"iam-add", "/portal/iam?id=" + hub + "&add=1"},
		{"identity", "/portal/identity?id=" + hub},
		{"routing", "/portal/routing?id=" + hub},
	} {
		b.Run(p.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if a := br.get(p.path); a.status != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, a.status)
				}
			}
		})
	}
}
