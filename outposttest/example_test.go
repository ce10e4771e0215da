package outposttest_test

// This file is the package's runnable example. TestExampleInFreshModule
// copies it verbatim into a module of its own, so it may import only the
// standard library, the Azure SDK and outposttest.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/outposttest"
)

// Built-in role definitions, by their ids (the same in every Azure tenant).
const (
	storageBlobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
	storageBlobDataReader      = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
)

// TestRouteTelemetryToStorage is the example: with the Azure SDK for Go,
// create a storage container and an IoT hub whose system-assigned identity
// may write to it, route the device messages whose "level" property is
// "critical" to the container, send two messages as a device, and read the
// one routed message back with azblob — every call authenticated with
// Entra tokens, no keys.
func TestRouteTelemetryToStorage(t *testing.T) {
	// Batches of one second instead of Azure's minimum of 60.
	o := outposttest.Start(t, outposttest.WithMinRoutingBatchFrequency(time.Second))
	ctx := t.Context()
	cred, opts := o.Credential(), o.ARMClientOptions()
	poll := &runtime.PollUntilDoneOptions{Frequency: 250 * time.Millisecond}
	const group, account, container, hubName = "telemetry", "telemetrystore", "critical", "telemetry-hub"

	groups, err := armresources.NewResourceGroupsClient(o.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatalf("create resource group: %v", err)
	}

	// The storage account and its container. armstorage works the same;
	// the generic client keeps this example to the modules Outpost uses.
	resources, err := armresources.NewClient(o.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	accountID := "/subscriptions/" + o.SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Storage/storageAccounts/" + account
	createByID(ctx, t, resources, accountID, armresources.GenericResource{
		Location: to.Ptr("westus"), Kind: to.Ptr("StorageV2"), SKU: &armresources.SKU{Name: to.Ptr("Standard_LRS")},
	}, poll)
	createByID(ctx, t, resources, accountID+"/blobServices/default/containers/"+container, armresources.GenericResource{Properties: map[string]any{}}, poll)

	// The hub, with a system-assigned identity.
	hubs, err := armiothub.NewResourceClient(o.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	creating, err := hubs.BeginCreateOrUpdate(ctx, group, hubName, armiothub.Description{
		Location: to.Ptr("westus"),
		SKU:      &armiothub.SKUInfo{Name: to.Ptr(armiothub.IotHubSKUS1), Capacity: to.Ptr[int64](1)},
		Identity: &armiothub.ArmIdentity{Type: to.Ptr(armiothub.ResourceIdentityTypeSystemAssigned)},
	}, nil)
	if err != nil {
		t.Fatalf("create hub: %v", err)
	}
	created, err := creating.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("create hub: %v", err)
	}
	hub := created.Description

	// The hub's identity may write blobs into the account; the operator —
	// whose credential this test reads with — may read them.
	roles, err := armauthorization.NewRoleAssignmentsClient(o.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	for principal, role := range map[string]string{*hub.Identity.PrincipalID: storageBlobDataContributor, o.OperatorPrincipalID: storageBlobDataReader} {
		_, err := roles.Create(ctx, accountID, newGUID(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr("/subscriptions/" + o.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + role),
				PrincipalID:      to.Ptr(principal),
				PrincipalType:    to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil)
		if err != nil {
			t.Fatalf("assign role %s to %s: %v", role, principal, err)
		}
	}

	// Route critical messages to the container as the hub's identity
	// (identityBased with no identity named: the system-assigned one).
	routing := hub.Properties.Routing
	if routing == nil || routing.Endpoints == nil {
		t.Fatalf("the created hub has no routing defaults: %+v", hub.Properties)
	}
	routing.Endpoints.StorageContainers = []*armiothub.RoutingStorageContainerProperties{{
		Name:                    to.Ptr("archive"),
		AuthenticationType:      to.Ptr(armiothub.AuthenticationTypeIdentityBased),
		EndpointURI:             to.Ptr(strings.TrimSuffix(o.BlobEndpoint(account), "/")),
		ContainerName:           to.Ptr(container),
		Encoding:                to.Ptr(armiothub.RoutingStorageContainerPropertiesEncodingJSON),
		BatchFrequencyInSeconds: to.Ptr[int32](1),
	}}
	routing.Routes = []*armiothub.RouteProperties{{
		Name:          to.Ptr("critical-to-archive"),
		Source:        to.Ptr(armiothub.RoutingSourceDeviceMessages),
		Condition:     to.Ptr("level = 'critical'"),
		EndpointNames: []*string{to.Ptr("archive")},
		IsEnabled:     to.Ptr(true),
	}}
	updating, err := hubs.BeginCreateOrUpdate(ctx, group, hubName, hub, &armiothub.ResourceClientBeginCreateOrUpdateOptions{IfMatch: hub.Etag})
	if err != nil {
		t.Fatalf("update routing: %v", err)
	}
	if _, err := updating.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("update routing: %v", err)
	}

	// A device sends an ordinary message, then a critical one.
	dev := o.Device(t, hubName, "sensor-1")
	for _, m := range []struct{ level, body string }{{"info", `{"temperature":21}`}, {"critical", `{"temperature":87}`}} {
		err := dev.Send(ctx, outposttest.Message{
			Body:        []byte(m.body),
			Properties:  map[string]string{"level": m.level},
			ContentType: "application/json", ContentEncoding: "utf-8",
		})
		if err != nil {
			t.Fatalf("send the %s message: %v", m.level, err)
		}
	}

	// The critical message — only it — arrives in the container as one JSON
	// line in a blob named {hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}.json.
	blobs, err := azblob.NewClient(o.BlobEndpoint(account), cred, &azblob.ClientOptions{ClientOptions: o.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	var records []routedMessage
	for deadline := time.Now().Add(30 * time.Second); len(records) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no message was routed to the container within 30 s")
		}
		records = readRouted(ctx, t, blobs, container)
	}
	if len(records) != 1 {
		t.Fatalf("routed %d messages, want only the critical one: %+v", len(records), records)
	}
	r := records[0]
	var body struct{ Temperature int }
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Temperature != 87 {
		t.Errorf("routed body %s, want the critical message's", r.Body)
	}
	if r.Properties["level"] != "critical" || r.SystemProperties["connectionDeviceId"] != "sensor-1" {
		t.Errorf("routed properties %v, system properties %v", r.Properties, r.SystemProperties)
	}
}

// routedMessage is one line of a JSON-encoded storage endpoint's blob, as
// IoT Hub writes it (Body is embedded JSON for UTF-8 JSON messages).
type routedMessage struct {
	EnqueuedTimeUtc  string
	Properties       map[string]string
	SystemProperties map[string]string
	Body             json.RawMessage
}

// readRouted downloads every blob of the container and decodes its lines.
func readRouted(ctx context.Context, t *testing.T, blobs *azblob.Client, container string) []routedMessage {
	t.Helper()
	var out []routedMessage
	for pager := blobs.NewListBlobsFlatPager(container, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list blobs: %v", err)
		}
		for _, item := range page.Segment.BlobItems {
			resp, err := blobs.DownloadStream(ctx, container, *item.Name, nil)
			if err != nil {
				t.Fatalf("download %s: %v", *item.Name, err)
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("download %s: %v", *item.Name, err)
			}
			for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
				var m routedMessage
				if err := json.Unmarshal(line, &m); err != nil {
					t.Fatalf("blob %s: line %q: %v", *item.Name, line, err)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// createByID creates a resource with the generic resource client and waits
// for its provisioning to finish.
func createByID(ctx context.Context, t *testing.T, c *armresources.Client, id string, body armresources.GenericResource, poll *runtime.PollUntilDoneOptions) {
	t.Helper()
	const storageAPIVersion = "2023-05-01"
	p, err := c.BeginCreateOrUpdateByID(ctx, id, storageAPIVersion, body, nil)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
}

// newGUID returns a random (version 4) GUID, the name a role assignment
// needs.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand docs)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
