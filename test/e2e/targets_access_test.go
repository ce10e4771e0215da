package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/egress"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// send POSTs one message to an Event Hubs / Service Bus entity with an
// Authorization header and returns the status and body.
func send(t *testing.T, c *http.Client, e testEntity, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.URL()+"?api-version=2014-01", strings.NewReader(`{"temp":21}`))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMessagingBearer: REST send to an event hub and a Service Bus queue
// with Bearer tokens from Outpost's issuer — the Data Sender role admits, no
// role gets Azure's 401 "claim(s) are required", a storage token gets 401.
func TestMessagingBearer(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		for _, tc := range []struct {
			provider, collection, resource, role string
		}{
			{"Microsoft.EventHub", "eventhubs", eventHubsResource, eventHubsDataSender},
			{"Microsoft.ServiceBus", "queues", serviceBusResource, serviceBusDataSender},
		} {
			t.Run(tc.provider, func(t *testing.T) {
				e := createMessagingEntity(t, s, "rg-msg-bearer", tc.provider, tc.collection, "")
				sender, senderID, senderSecret := newServicePrincipal(t, s, "sender")
				assignRole(t, s, sender, tc.role, e.NamespaceID)
				_, otherID, otherSecret := newServicePrincipal(t, s, "no-role")
				c := s.HTTPClient()

				if code, body := send(t, c, e, "Bearer "+spToken(t, s, senderID, senderSecret, tc.resource)); code != 201 {
					t.Fatalf("send with the Data Sender role: %d %s", code, body)
				}
				code, body := send(t, c, e, "Bearer "+spToken(t, s, otherID, otherSecret, tc.resource))
				if code != 401 || !strings.Contains(body, "'Send' claim(s) are required to perform this operation") {
					t.Fatalf("send without a role: %d %s", code, body)
				}
				if code, body := send(t, c, e, "Bearer "+spToken(t, s, senderID, senderSecret, storageResource)); code != 401 {
					t.Fatalf("send with a storage token: %d %s", code, body)
				}
			})
		}
	})
}

// TestRoleRemovalRefusesAfterPropagation: once a role assignment is
// deleted, sends are refused — not at once, but after the configured
// propagation delay, as Azure's caches make it take a while.
func TestRoleRemovalRefusesAfterPropagation(t *testing.T) {
	const delay = 3 * time.Second
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Identity.PropagationDelay = delay }))
	e := createMessagingEntity(t, s, "rg-msg-revoke", "Microsoft.ServiceBus", "queues", "")
	oid, clientID, secret := newServicePrincipal(t, s, "revoked")
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	assignment := e.ID + "/providers/Microsoft.Authorization/roleAssignments/6f0c1b0e-8d51-4c36-9b7a-2b7f4b0d1e11"
	if code, body := op.do("PUT", assignment+"?api-version=2022-04-01", `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/`+serviceBusDataSender+`","principalId":"`+oid+`"}}`); code != 201 {
		t.Fatalf("assign: %d %v", code, body)
	}
	c := s.HTTPClient()
	deadline := time.Now().Add(delay + 10*time.Second)
	for {
		if code, _ := send(t, c, e, "Bearer "+spToken(t, s, clientID, secret, serviceBusResource)); code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new assignment never took effect")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := op.do("DELETE", assignment+"?api-version=2022-04-01", ""); code != 200 {
		t.Fatalf("delete assignment: %d %v", code, body)
	}
	removed := time.Now()
	if code, body := send(t, c, e, "Bearer "+spToken(t, s, clientID, secret, serviceBusResource)); code != 201 {
		t.Fatalf("refused at once (%d %s); the propagation delay is %s", code, body, delay)
	}
	for {
		code, body := send(t, c, e, "Bearer "+spToken(t, s, clientID, secret, serviceBusResource))
		if code == 401 {
			if waited := time.Since(removed); waited < delay-500*time.Millisecond {
				t.Fatalf("refused after %s, before the %s delay", waited, delay)
			}
			if !strings.Contains(body, "claim(s) are required") {
				t.Fatalf("refusal body: %s", body)
			}
			return
		}
		if time.Since(removed) > delay+10*time.Second {
			t.Fatalf("still %d %s %s after the assignment was removed", code, body, time.Since(removed))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// putBlob writes one blob with a bearer token (or a Shared Key-less
// anonymous request when token is "") and returns status, error code and
// message.
func putBlob(t *testing.T, c *http.Client, url, token string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader("hello"))
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	req.Header.Set("x-ms-version", "2023-11-03")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("x-ms-error-code"), string(b)
}

// TestNetworkRules: a storage account closed to the public with the
// trusted-services bypass admits its IoT hub's system-assigned identity and
// refuses the hub's user-assigned identity and every other principal, each
// with the reason; IP rules admit exactly the listed client addresses.
func TestNetworkRules(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	ctx := context.Background()
	group := "rg-net"
	ensureGroup(t, s, group)
	sub := s.App.Installation().SubscriptionID
	uami := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/hub-uami"
	uamiDoc := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)
	uamiPrincipal := uamiDoc["properties"].(map[string]any)["principalId"].(string)
	hubID := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + uniqueName("nethub", 20)
	hubDoc := putAndWait(t, s, hubID, "2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},
		"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+uami+`":{}}}}`)
	hubPrincipal := hubDoc["identity"].(map[string]any)["principalId"].(string)

	closed := createStorageAccount(t, s, group, `{"publicNetworkAccess":"Disabled","networkAcls":{"bypass":"AzureServices","defaultAction":"Deny"}}`, "")
	spOID, spClient, spSecret := newServicePrincipal(t, s, "outsider")
	for _, p := range []string{hubPrincipal, uamiPrincipal, spOID} {
		assignRole(t, s, p, storageBlobDataContributor, closed.ID)
	}
	putAndWait(t, s, closed.ID+"/blobServices/default/containers/routed", storageAPI, `{"properties":{}}`)
	url := closed.BlobEndpoint + "routed/msg.json"
	c := s.HTTPClient()

	hubToken, err := s.App.ManagedIdentityToken(ctx, hubID, "", storageResource)
	if err != nil {
		t.Fatal(err)
	}
	if code, ecode, body := putBlob(t, c, url, hubToken); code != 201 {
		t.Fatalf("hub's system-assigned identity through the bypass: %d %s %s", code, ecode, body)
	}
	uamiToken, err := s.App.ManagedIdentityToken(ctx, hubID, uami, storageResource)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ who, token, reason string }{
		{"user-assigned identity", uamiToken, "user-assigned identity needs public network access"},
		{"service principal", spToken(t, s, spClient, spSecret, storageResource), "not a managed identity"},
	} {
		code, ecode, body := putBlob(t, c, url, tc.token)
		if code != 403 || ecode != "AuthorizationFailure" || !strings.Contains(body, tc.reason) {
			t.Errorf("%s on a closed account: %d %s %s", tc.who, code, ecode, body)
		}
	}

	// IP rules: only 127.0.0.2 may call.
	ipAcct := createStorageAccount(t, s, group, `{"networkAcls":{"defaultAction":"Deny","ipRules":[{"value":"127.0.0.2","action":"Allow"}]}}`, "")
	assignRole(t, s, spOID, storageBlobDataContributor, ipAcct.ID)
	putAndWait(t, s, ipAcct.ID+"/blobServices/default/containers/ipc", storageAPI, `{"properties":{}}`)
	tok := spToken(t, s, spClient, spSecret, storageResource)
	if code, ecode, body := putBlob(t, clientFrom(s, "127.0.0.2"), ipAcct.BlobEndpoint+"ipc/a", tok); code != 201 {
		t.Fatalf("from the allowed 127.0.0.2: %d %s %s", code, ecode, body)
	}
	code, ecode, body := putBlob(t, clientFrom(s, "127.0.0.3"), ipAcct.BlobEndpoint+"ipc/b", tok)
	if code != 403 || ecode != "AuthorizationFailure" || !strings.Contains(body, "127.0.0.3") {
		t.Fatalf("from 127.0.0.3: %d %s %s", code, ecode, body)
	}
}

// TestStorageAccountIdentityRunAs: a program under `outpost run --as
// <storage account>` gets the account's system-assigned identity's token.
func TestStorageAccountIdentityRunAs(t *testing.T) {
	bin := testserver.BuildBinary(t)
	whoami := buildWhoami(t)
	s := testserver.Start(t)
	acct := createStorageAccount(t, s, "rg-acct-mi", "", `{"type":"SystemAssigned"}`)
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	_, doc := op.do("GET", acct.ID+"?api-version="+storageAPI, "")
	principal, _ := doc["identity"].(map[string]any)["principalId"].(string)
	hosts := exec.Command(bin, "env", "--hosts", "--data-dir", s.Config.DataDir)
	hosts.Env = os.Environ()
	for k, v := range s.Env() {
		hosts.Env = append(hosts.Env, k+"="+v)
	}
	if out, err := hosts.Output(); err != nil || !strings.Contains(string(out), s.IP+" "+acct.Name+".blob."+s.Config.DNSSuffix+"\n") {
		t.Errorf("outpost env --hosts = %q, %v; want the account's blob host", out, err)
	}
	claims := runAs(t, s, bin, whoami, acct.ID)
	if principal == "" || claims["oid"] != principal || !strings.EqualFold(claims["xms_mirid"].(string), acct.ID) {
		t.Fatalf("claims under outpost run --as <account> = %v (principal %q)", claims, principal)
	}
}

// TestEgressClient: the client the hub's egress uses reaches a storage
// account Outpost serves, with the hub's token, and refuses what it must.
func TestEgressClient(t *testing.T) {
	s := testserver.Start(t)
	acct := createStorageAccount(t, s, "rg-egress", "", "")
	hubID := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/rg-egress/providers/Microsoft.Devices/IotHubs/" + uniqueName("egresshub", 20)
	hubDoc := putAndWait(t, s, hubID, "2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"identity":{"type":"SystemAssigned"}}`)
	assignRole(t, s, hubDoc["identity"].(map[string]any)["principalId"].(string), storageBlobDataContributor, acct.ID)
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/out", storageAPI, `{"properties":{}}`)
	tok, err := s.App.ManagedIdentityToken(context.Background(), hubID, "", storageResource)
	if err != nil {
		t.Fatal(err)
	}
	// Outpost's own names are dialed at its own listener, whatever DNS says.
	c := s.App.Egress().HTTPClient()
	if code, ecode, body := putBlob(t, c, acct.BlobEndpoint+"out/first", tok); code != 201 {
		t.Fatalf("egress to the account: %d %s %s", code, ecode, body)
	}
	for _, u := range []string{
		"https://127.0.0.1:6379/x", "https://169.254.169.254/metadata/identity", "https://[::1]/x",
		"http://" + acct.Name + ".blob." + s.Config.DNSSuffix + "/out/plain",
	} {
		req, _ := http.NewRequest("PUT", u, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := s.App.Egress().Do(req)
		var refused *egress.RefusedError
		if !errors.As(err, &refused) {
			if resp != nil {
				resp.Body.Close()
			}
			t.Errorf("egress to %s: %v, want a refusal", u, err)
		}
	}
}
