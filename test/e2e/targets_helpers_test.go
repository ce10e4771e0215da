package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// Resource URIs of the egress targets' data planes (token audiences).
const (
	storageResource    = "https://storage.azure.com/"
	eventHubsResource  = "https://eventhubs.azure.net/"
	serviceBusResource = "https://servicebus.azure.net/"
)

// Built-in data roles the tests grant.
const (
	eventHubsDataSender  = "2b629674-e913-4c01-ae53-ef4638d8f975"
	serviceBusDataSender = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
)

// ensureGroup creates a resource group (or finds it there).
func ensureGroup(t *testing.T, s *testserver.Server, group string) {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	sub := s.App.Installation().SubscriptionID
	if code, body := op.do("PUT", "/subscriptions/"+sub+"/resourcegroups/"+group+"?api-version=2021-04-01", `{"location":"westus"}`); code != 201 && code != 200 {
		t.Fatalf("create group %s: %d %v", group, code, body)
	}
}

// putAndWait PUTs a resource as an ARM client does and polls it until it is
// provisioned, returning the final document.
func putAndWait(t *testing.T, s *testserver.Server, id, apiVersion, body string) map[string]any {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	if code, resp := op.do("PUT", id+"?api-version="+apiVersion, body); code != 200 && code != 201 && code != 202 {
		t.Fatalf("PUT %s: %d %v", id, code, resp)
	}
	return waitProvisioned(t, s, id, apiVersion)
}

// waitProvisioned polls a resource until its provisioning state is final.
func waitProvisioned(t *testing.T, s *testserver.Server, id, apiVersion string) map[string]any {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, doc := op.do("GET", id+"?api-version="+apiVersion, "")
		props, _ := doc["properties"].(map[string]any)
		state, _ := props["provisioningState"].(string)
		if code == 200 && (state == "Succeeded" || state == "") {
			return doc
		}
		if time.Now().After(deadline) || state == "Failed" {
			t.Fatalf("%s not provisioned: %d %v", id, code, doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uniqueName is a lower-case name with a random tail, n characters at most.
func uniqueName(prefix string, n int) string {
	name := fmt.Sprintf("%s%09d", prefix, rand.IntN(1e9))
	return name[:min(len(name), n)]
}

// testAccount is a storage account created through the resource manager.
type testAccount struct {
	Name, ID, Key string
	// BlobEndpoint is the virtual-hosted account URL, with a trailing slash.
	BlobEndpoint string
}

const storageAPI = "2023-05-01"

// createStorageAccount creates a StorageV2 account with the given
// properties JSON ("" for none) and identity JSON ("" for none), maps its
// blob host name and returns its first key.
func createStorageAccount(t *testing.T, s *testserver.Server, group, properties, identity string) testAccount {
	t.Helper()
	s.Require443(t)
	ensureGroup(t, s, group)
	name := uniqueName("acct", 24)
	id := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Storage/storageAccounts/" + name
	body := `{"location":"westus","kind":"StorageV2","sku":{"name":"Standard_LRS"}`
	if properties != "" {
		body += `,"properties":` + properties
	}
	if identity != "" {
		body += `,"identity":` + identity
	}
	doc := putAndWait(t, s, id, storageAPI, body+"}")
	props := doc["properties"].(map[string]any)
	endpoints, _ := props["primaryEndpoints"].(map[string]any)
	blob, _ := endpoints["blob"].(string)
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, keys := op.do("POST", id+"/listKeys?api-version="+storageAPI, "")
	if code != 200 {
		t.Fatalf("listKeys: %d %v", code, keys)
	}
	list, _ := keys["keys"].([]any)
	if len(list) == 0 || blob == "" {
		t.Fatalf("account %s: endpoints %v keys %v", name, endpoints, keys)
	}
	a := testAccount{Name: name, ID: id, Key: list[0].(map[string]any)["value"].(string), BlobEndpoint: blob}
	testserver.MapHosts(t, s.IP, name+".blob."+s.Config.DNSSuffix)
	return a
}

// testEntity is an event hub, queue or topic in a namespace.
type testEntity struct {
	Namespace, NamespaceID string
	Name, ID               string
	// Host is {namespace}.servicebus.{suffix}.
	Host string
	// Key is the namespace's RootManageSharedAccessKey primary key.
	Key string
}

// URL is the entity's REST send address.
func (e testEntity) URL() string { return "https://" + e.Host + "/" + e.Name + "/messages" }

const (
	eventHubAPI   = "2024-01-01"
	serviceBusAPI = "2022-10-01-preview"
)

// createMessagingEntity creates a namespace of the provider
// ("Microsoft.EventHub" or "Microsoft.ServiceBus") and one entity in it
// (collection "eventhubs", "queues" or "topics").
func createMessagingEntity(t *testing.T, s *testserver.Server, group, provider, collection, nsProperties string) testEntity {
	t.Helper()
	s.Require443(t)
	ensureGroup(t, s, group)
	api := eventHubAPI
	if provider == "Microsoft.ServiceBus" {
		api = serviceBusAPI
	}
	ns := uniqueName("ns-", 20)
	nsID := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/" + provider + "/namespaces/" + ns
	body := `{"location":"westus","sku":{"name":"Standard","tier":"Standard"}`
	if nsProperties != "" {
		body += `,"properties":` + nsProperties
	}
	putAndWait(t, s, nsID, api, body+"}")
	entity := uniqueName("e", 12)
	entityBody := `{"properties":{}}`
	if collection == "eventhubs" {
		entityBody = `{"properties":{"partitionCount":4,"messageRetentionInDays":1}}`
	}
	entityID := nsID + "/" + collection + "/" + entity
	putAndWait(t, s, entityID, api, entityBody)
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, keys := op.do("POST", nsID+"/authorizationRules/RootManageSharedAccessKey/listKeys?api-version="+api, "")
	if code != 200 {
		t.Fatalf("listKeys: %d %v", code, keys)
	}
	key, _ := keys["primaryKey"].(string)
	e := testEntity{Namespace: ns, NamespaceID: nsID, Name: entity, ID: entityID, Host: ns + ".servicebus." + s.Config.DNSSuffix, Key: key}
	testserver.MapHosts(t, s.IP, e.Host)
	return e
}

// newServicePrincipal creates a service principal and returns its object
// id, client id and secret.
func newServicePrincipal(t *testing.T, s *testserver.Server, name string) (objectID, clientID, secret string) {
	t.Helper()
	p, secret, err := s.App.Directory().CreateServicePrincipal(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p.ObjectID, p.AppID, secret
}

// spToken gets a token for a service principal from the real token endpoint.
func spToken(t *testing.T, s *testserver.Server, clientID, secret, resource string) string {
	t.Helper()
	return testserver.ClientCredentialsToken(t, s.HTTPClient(), s.Endpoint, s.App.Installation().TenantID, clientID, secret, resource)
}

// clientFrom is s.HTTPClient with its sockets bound to a local address, for
// IP network rules (127.0.0.2 and up are all this machine).
func clientFrom(s *testserver.Server, localIP string) *http.Client {
	c := s.HTTPClient()
	tr := c.Transport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	suffix := "." + s.Config.DNSSuffix
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(host), suffix) {
			addr = net.JoinHostPort(s.IP, port)
		}
		return d.DialContext(ctx, network, addr)
	}
	c.Transport = tr
	return c
}
