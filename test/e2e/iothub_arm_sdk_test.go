package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// iotHubPoll keeps LRO polling quick; the server's Retry-After still rules.
var iotHubPoll = &runtime.PollUntilDoneOptions{Frequency: 250 * time.Millisecond}

// uniqueHubName returns a hub name of its own for one test run: hub names
// are global in an installation, and the tiers run in parallel.
func uniqueHubName(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:10]
}

// TestIotHubGoSDK drives Microsoft.Devices/IotHubs with the unmodified Go
// SDK (armiothub v1.3.0, api-version 2023-06-30): create with a
// system-assigned identity, read, list, keys, name checks, statistics, tag
// update, identity off and on again, delete — and the error shapes.
func TestIotHubGoSDK(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		cred, opts := operatorCredential(t, s), armOptions(s)
		sub := s.App.Installation().SubscriptionID
		const group = "rg-iothub-go"
		groups, _ := armresources.NewResourceGroupsClient(sub, cred, opts)
		if _, err := groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
			t.Fatalf("create group: %v", err)
		}
		hubs, err := armiothub.NewResourceClient(sub, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		name := uniqueHubName("gohub")

		// Create, long-running, with a system-assigned identity.
		poller, err := hubs.BeginCreateOrUpdate(ctx, group, name, armiothub.Description{
			Location: to.Ptr("westus"),
			SKU:      &armiothub.SKUInfo{Name: to.Ptr(armiothub.IotHubSKUS1), Capacity: to.Ptr[int64](1)},
			Identity: &armiothub.ArmIdentity{Type: to.Ptr(armiothub.ResourceIdentityTypeSystemAssigned)},
			Tags:     map[string]*string{"team": to.Ptr("edge")},
		}, nil)
		if err != nil {
			t.Fatalf("begin create: %v", err)
		}
		created, err := poller.PollUntilDone(ctx, iotHubPoll)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		hub := created.Description
		p := hub.Properties
		if p == nil || *p.ProvisioningState != "Succeeded" || *p.State != "Active" || *p.HostName != strings.ToLower(name)+"."+s.Config.DNSSuffix {
			t.Fatalf("created hub properties = %+v", p)
		}
		if *hub.SKU.Tier != armiothub.IotHubSKUTierStandard || *hub.SKU.Capacity != 1 || *hub.Tags["team"] != "edge" {
			t.Errorf("created hub sku %+v tags %v", hub.SKU, hub.Tags)
		}
		if p.AuthorizationPolicies != nil {
			t.Errorf("the create response carries keys: %+v", p.AuthorizationPolicies)
		}
		if ev := p.EventHubEndpoints["events"]; ev == nil || *ev.PartitionCount != 4 || len(ev.PartitionIDs) != 4 || *ev.Path != strings.ToLower(name) {
			t.Errorf("events endpoint = %+v", ev)
		}
		if r := p.Routing; r == nil || r.Endpoints == nil || r.Endpoints.StorageContainers == nil || r.FallbackRoute == nil || *r.FallbackRoute.EndpointNames[0] != "events" {
			t.Errorf("routing = %+v", r)
		}
		firstPrincipal := ""
		if id := hub.Identity; id == nil || *id.Type != armiothub.ResourceIdentityTypeSystemAssigned || id.PrincipalID == nil || *id.TenantID != s.App.Installation().TenantID {
			t.Fatalf("identity = %+v", id)
		} else {
			firstPrincipal = *id.PrincipalID
		}

		got, err := hubs.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if *got.ID != *hub.ID || *got.Identity.PrincipalID != firstPrincipal || got.Etag == nil {
			t.Errorf("get = %+v", got.Description)
		}

		// Lists by group and by subscription.
		var inGroup, inSub []string
		for pager := hubs.NewListByResourceGroupPager(group, nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list by group: %v", err)
			}
			for _, h := range page.Value {
				inGroup = append(inGroup, *h.Name)
			}
		}
		for pager := hubs.NewListBySubscriptionPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list by subscription: %v", err)
			}
			for _, h := range page.Value {
				inSub = append(inSub, *h.Name)
			}
		}
		if !slices.Equal(inGroup, []string{name}) || !slices.Contains(inSub, name) {
			t.Errorf("hubs in %s = %v, in the subscription = %v; want %s in both", group, inGroup, inSub, name)
		}

		// Keys: the five default policies.
		var policies []*armiothub.SharedAccessSignatureAuthorizationRule
		for pager := hubs.NewListKeysPager(group, name, nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("listkeys: %v", err)
			}
			policies = append(policies, page.Value...)
		}
		if len(policies) != 5 || *policies[0].KeyName != "iothubowner" || *policies[0].Rights != armiothub.AccessRightsRegistryWriteServiceConnectDeviceConnect ||
			policies[0].PrimaryKey == nil || *policies[0].PrimaryKey == "" {
			t.Errorf("policies = %v", policies)
		}
		owner, err := hubs.GetKeysForKeyName(ctx, group, name, "iothubowner", nil)
		if err != nil || *owner.PrimaryKey != *policies[0].PrimaryKey {
			t.Errorf("GetKeysForKeyName = %+v, %v", owner.SharedAccessSignatureAuthorizationRule, err)
		}

		// Name checks: taken (in any group) and free.
		taken, err := hubs.CheckNameAvailability(ctx, armiothub.OperationInputs{Name: to.Ptr(strings.ToUpper(name))}, nil)
		if err != nil || *taken.NameAvailable || *taken.Reason != armiothub.IotHubNameUnavailabilityReasonAlreadyExists {
			t.Errorf("checkNameAvailability(taken) = %+v, %v", taken.NameAvailabilityInfo, err)
		}
		free, err := hubs.CheckNameAvailability(ctx, armiothub.OperationInputs{Name: to.Ptr(uniqueHubName("free"))}, nil)
		if err != nil || !*free.NameAvailable {
			t.Errorf("checkNameAvailability(free) = %+v, %v", free.NameAvailabilityInfo, err)
		}

		// Reads.
		stats, err := hubs.GetStats(ctx, group, name, nil)
		if err != nil || stats.TotalDeviceCount == nil || *stats.TotalDeviceCount != 0 || *stats.EnabledDeviceCount != 0 || *stats.DisabledDeviceCount != 0 {
			t.Errorf("GetStats = %+v, %v", stats.RegistryStatistics, err)
		}
		skus := hubs.NewGetValidSKUsPager(group, name, nil)
		for skus.More() {
			page, err := skus.NextPage(ctx)
			if err != nil || len(page.Value) != 3 || *page.Value[0].SKU.Name != armiothub.IotHubSKUS1 {
				t.Errorf("GetValidSkus = %+v, %v", page.Value, err)
			}
		}
		for quota := hubs.NewGetQuotaMetricsPager(group, name, nil); quota.More(); {
			if page, err := quota.NextPage(ctx); err != nil || len(page.Value) != 2 {
				t.Errorf("GetQuotaMetrics = %+v, %v", page.Value, err)
			}
		}
		for health := hubs.NewGetEndpointHealthPager(group, name, nil); health.More(); {
			if _, err := health.NextPage(ctx); err != nil {
				t.Errorf("GetEndpointHealth: %v", err)
			}
		}
		common, _ := armiothub.NewResourceProviderCommonClient(sub, cred, opts)
		if quota, err := common.GetSubscriptionQuota(ctx, nil); err != nil || len(quota.Value) == 0 {
			t.Errorf("usages = %+v, %v", quota.Value, err)
		}

		// Tags through PATCH, long-running too.
		up, err := hubs.BeginUpdate(ctx, group, name, armiothub.TagsResource{Tags: map[string]*string{"env": to.Ptr("test")}}, nil)
		if err != nil {
			t.Fatalf("begin update: %v", err)
		}
		updated, err := up.PollUntilDone(ctx, iotHubPoll)
		if err != nil {
			t.Fatalf("update tags: %v", err)
		}
		if len(updated.Tags) != 1 || *updated.Tags["env"] != "test" || *updated.Identity.PrincipalID != firstPrincipal {
			t.Errorf("after tag update: tags %v identity %+v", updated.Tags, updated.Identity)
		}

		// The system-assigned identity gets a role, is switched off (the
		// principal and its role assignments go) and on again (a new one).
		assignments, _ := armauthorization.NewRoleAssignmentsClient(sub, cred, opts)
		scope := "/subscriptions/" + sub + "/resourceGroups/" + group
		assignment := uuid.NewString()
		if _, err := assignments.Create(ctx, scope, assignment, armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + storageBlobDataContributor),
				PrincipalID:      to.Ptr(firstPrincipal), PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil); err != nil {
			t.Fatalf("assign a role to the hub's identity: %v", err)
		}
		setIdentity := func(typ armiothub.ResourceIdentityType) armiothub.Description {
			t.Helper()
			cur, err := hubs.Get(ctx, group, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			cur.Identity = &armiothub.ArmIdentity{Type: to.Ptr(typ)}
			poller, err := hubs.BeginCreateOrUpdate(ctx, group, name, cur.Description, &armiothub.ResourceClientBeginCreateOrUpdateOptions{IfMatch: cur.Etag})
			if err != nil {
				t.Fatalf("set identity %s: %v", typ, err)
			}
			res, err := poller.PollUntilDone(ctx, iotHubPoll)
			if err != nil {
				t.Fatalf("set identity %s: %v", typ, err)
			}
			return res.Description
		}
		off := setIdentity(armiothub.ResourceIdentityTypeNone)
		if *off.Identity.Type != armiothub.ResourceIdentityTypeNone || off.Identity.PrincipalID != nil {
			t.Errorf("identity after None = %+v", off.Identity)
		}
		_, err = assignments.Get(ctx, scope, assignment, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			t.Errorf("the old principal's role assignment after switching the identity off: %v, want 404", err)
		}
		on := setIdentity(armiothub.ResourceIdentityTypeSystemAssigned)
		if on.Identity.PrincipalID == nil || *on.Identity.PrincipalID == firstPrincipal {
			t.Errorf("identity after switching it on again = %+v, want a new principal (old %s)", on.Identity, firstPrincipal)
		}
		// The keys survived every update.
		again, err := hubs.GetKeysForKeyName(ctx, group, name, "iothubowner", nil)
		if err != nil || *again.PrimaryKey != *owner.PrimaryKey {
			t.Errorf("iothubowner keys changed across updates: %v", err)
		}

		// A bad name gets IoT Hub's flat error, through the SDK and on the wire.
		_, err = hubs.BeginCreateOrUpdate(ctx, group, "-bad", armiothub.Description{
			Location: to.Ptr("westus"), SKU: &armiothub.SKUInfo{Name: to.Ptr(armiothub.IotHubSKUS1)},
		}, nil)
		expectResponseError(t, err, 400, "InvalidIotHubName")
		op := armCall{t, s, s.Token(t, testserver.ARMResource)}
		code, body := op.do("PUT", scope+"/providers/Microsoft.Devices/IotHubs/-bad?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1"}}`)
		if _, wrapped := body["error"]; code != 400 || wrapped || body["code"] != "InvalidIotHubName" || body["httpStatusCode"] == nil || !strings.Contains(body["message"].(string), "-bad") {
			t.Errorf("bad name: %d %v, want a flat IoT Hub error", code, body)
		}
		// A wrong api-version gets the ARM envelope.
		code, body = op.do("GET", scope+"/providers/Microsoft.Devices/IotHubs/"+name+"?api-version=2015-08-15-preview", "")
		if code != 400 || errorCode(body) != "NoRegisteredProviderFound" || !strings.Contains(body["error"].(map[string]any)["message"].(string), "2023-06-30") {
			t.Errorf("wrong api-version: %d %v, want NoRegisteredProviderFound in the ARM envelope", code, body)
		}

		// Delete, long-running.
		del, err := hubs.BeginDelete(ctx, group, name, nil)
		if err != nil {
			t.Fatalf("begin delete: %v", err)
		}
		if _, err := del.PollUntilDone(ctx, iotHubPoll); err != nil {
			t.Fatalf("delete: %v", err)
		}
		_, err = hubs.Get(ctx, group, name, nil)
		expectResponseError(t, err, 404, "ResourceNotFound")
		after, err := hubs.CheckNameAvailability(ctx, armiothub.OperationInputs{Name: to.Ptr(name)}, nil)
		if err != nil || !*after.NameAvailable {
			t.Errorf("the name of a deleted hub is not free again: %+v, %v", after.NameAvailabilityInfo, err)
		}
	})
}

// TestIotHubProviderMetadata checks what az reads api-versions from.
func TestIotHubProviderMetadata(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	providers, _ := armresources.NewProvidersClient(s.App.Installation().SubscriptionID, operatorCredential(t, s), armOptions(s))
	p, err := providers.Get(ctx, "Microsoft.Devices", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range p.ResourceTypes {
		if *rt.ResourceType != "IotHubs" {
			continue
		}
		var versions []string
		for _, v := range rt.APIVersions {
			versions = append(versions, *v)
		}
		for _, want := range []string{"2023-06-30", "2022-04-30-preview", "2021-07-02", "2021-03-31", "2018-04-01"} {
			if !slices.Contains(versions, want) {
				t.Errorf("IotHubs api-versions %v lack %s", versions, want)
			}
		}
		// az resource show picks the newest non-preview entry.
		for _, v := range versions {
			if !strings.HasSuffix(v, "-preview") {
				if v != "2023-06-30" {
					t.Errorf("newest stable api-version = %s, want 2023-06-30", v)
				}
				break
			}
		}
		return
	}
	t.Errorf("Microsoft.Devices has no IotHubs type: %+v", p.ResourceTypes)
}
