package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// testHub is a hub created through the resource manager for a test.
type testHub struct {
	Name, ID, HostName string
	OwnerKey           string
}

// ServiceConnectionString is the iothubowner connection string.
func (h testHub) ServiceConnectionString() string {
	return "HostName=" + h.HostName + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + h.OwnerKey
}

// createHub creates a hub with REST calls as any ARM client would, waits
// for it, maps its host name to the server's address, and returns its keys.
func createHub(t *testing.T, s *testserver.Server, group string) testHub {
	t.Helper()
	s.Require443(t)
	sub := s.App.Installation().SubscriptionID
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	if code, body := op.do("PUT", "/subscriptions/"+sub+"/resourcegroups/"+group+"?api-version=2021-04-01", `{"location":"westus"}`); code != 201 && code != 200 {
		t.Fatalf("create group: %d %v", code, body)
	}
	name := fmt.Sprintf("hub-%d", rand.IntN(1e9))
	id := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
	if code, body := op.do("PUT", id+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1}}`); code != 201 && code != 200 {
		t.Fatalf("create hub: %d %v", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	var hostName string
	for {
		code, body := op.do("GET", id+"?api-version=2023-06-30", "")
		props, _ := body["properties"].(map[string]any)
		if code == 200 && props["provisioningState"] == "Succeeded" {
			hostName, _ = props["hostName"].(string)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub not provisioned: %d %v", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, keys := op.do("POST", id+"/listkeys?api-version=2023-06-30", "")
	if code != 200 {
		t.Fatalf("listkeys: %d %v", code, keys)
	}
	h := testHub{Name: name, ID: id, HostName: hostName}
	for _, k := range keys["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			h.OwnerKey = m["primaryKey"].(string)
		}
	}
	if h.OwnerKey == "" || !strings.HasPrefix(hostName, name+".") {
		t.Fatalf("hub %+v from keys %v", h, keys)
	}
	testserver.MapHosts(t, s.IP, hostName)
	return h
}

// assignRole gives a principal a built-in role at a scope.
func assignRole(t *testing.T, s *testserver.Server, principalID, roleGUID, scope string) {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	sub := s.App.Installation().SubscriptionID
	body, _ := json.Marshal(map[string]any{"properties": map[string]string{
		"roleDefinitionId": "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + roleGUID,
		"principalId":      principalID,
	}})
	if code, resp := op.do("PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01", string(body)); code != 201 {
		t.Fatalf("assign role %s: %d %v", roleGUID, code, resp)
	}
}

const iotHubDataContributor = "4fc6c259-987e-4a07-842e-c321cc9d413f"

// createDevice registers a device with the service REST API (SAS of the

// hubPrincipal is the principal id of a hub's system-assigned identity.
func hubPrincipal(t *testing.T, s *testserver.Server, h testHub) string {
	t.Helper()
	_, doc := armCall{t, s, s.Token(t, testserver.ARMResource)}.do("GET", h.ID+"?api-version=2023-06-30", "")
	ident, _ := doc["identity"].(map[string]any)
	p, _ := ident["principalId"].(string)
	if p == "" {
		t.Fatalf("hub %s has no system-assigned identity: %v", h.Name, doc["identity"])
	}
	return p
}

// iothubowner policy) and returns its primary key.
func createDevice(t *testing.T, s *testserver.Server, h testHub, id string) string {
	t.Helper()
	token, err := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", "https://"+h.HostName+"/devices/"+id+"?api-version=2021-04-12", strings.NewReader(`{"deviceId":"`+id+`"}`))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dev struct {
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&dev) != nil || dev.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("create device %s: %s", id, resp.Status)
	}
	return dev.Authentication.SymmetricKey.PrimaryKey
}
