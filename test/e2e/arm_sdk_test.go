package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestGoSDKResourceGroups drives the unmodified armresources and
// armsubscriptions clients over HTTPS against Outpost.
func TestGoSDKResourceGroups(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		opts := armOptions(s)
		cred := operatorCredential(t, s)
		sub := s.App.Installation().SubscriptionID

		subs, err := armsubscriptions.NewClient(cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := subs.Get(ctx, sub, nil)
		if err != nil {
			t.Fatalf("subscriptions get: %v", err)
		}
		if *got.SubscriptionID != sub || *got.State != armsubscriptions.SubscriptionStateEnabled {
			t.Errorf("subscription = %+v", got.Subscription)
		}
		var listed []string
		for pager := subs.NewListPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("subscriptions list: %v", err)
			}
			for _, s := range page.Value {
				listed = append(listed, *s.SubscriptionID)
			}
		}
		if len(listed) != 1 || listed[0] != sub {
			t.Errorf("subscriptions list = %v, want [%s]", listed, sub)
		}

		groups, err := armresources.NewResourceGroupsClient(sub, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		created, err := groups.CreateOrUpdate(ctx, "rg-go", armresources.ResourceGroup{
			Location: to.Ptr("westus"), Tags: map[string]*string{"env": to.Ptr("test")},
		}, nil)
		if err != nil {
			t.Fatalf("create group: %v", err)
		}
		if *created.Name != "rg-go" || *created.Location != "westus" || *created.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("created = %+v", created.ResourceGroup)
		}
		if _, err := groups.CreateOrUpdate(ctx, "rg-other", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
			t.Fatalf("create second group: %v", err)
		}
		exists, err := groups.CheckExistence(ctx, "RG-GO", nil)
		if err != nil || !exists.Success {
			t.Errorf("check existence (other case) = %v, %v", exists.Success, err)
		}
		upd, err := groups.Update(ctx, "rg-go", armresources.ResourceGroupPatchable{Tags: map[string]*string{"env": to.Ptr("prod")}}, nil)
		if err != nil || *upd.Tags["env"] != "prod" {
			t.Fatalf("update tags: %v %+v", err, upd)
		}
		var names []string
		for pager := groups.NewListPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list groups: %v", err)
			}
			for _, g := range page.Value {
				names = append(names, *g.Name)
			}
		}
		if len(names) != 2 {
			t.Errorf("listed groups %v, want rg-go and rg-other", names)
		}

		generic, err := armresources.NewClient(sub, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		byID, err := generic.GetByID(ctx, "/subscriptions/"+sub+"/resourceGroups/rg-go", "2021-04-01", nil)
		if err != nil {
			t.Fatalf("GetByID group: %v", err)
		}
		if *byID.Name != "rg-go" {
			t.Errorf("GetByID name = %s", *byID.Name)
		}
		_, err = generic.GetByID(ctx, "/subscriptions/"+sub+"/resourceGroups/rg-go/providers/Microsoft.Nope/things/x", "2021-04-01", nil)
		expectResponseError(t, err, http.StatusBadRequest, "InvalidResourceNamespace")

		poller, err := groups.BeginDelete(ctx, "rg-go", nil)
		if err != nil {
			t.Fatalf("begin delete: %v", err)
		}
		if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		_, err = groups.Get(ctx, "rg-go", nil)
		expectResponseError(t, err, http.StatusNotFound, "ResourceGroupNotFound")
		if _, err := groups.Get(ctx, "rg-other", nil); err != nil {
			t.Errorf("the other group went too: %v", err)
		}
	})
}

func expectResponseError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a ResponseError %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Errorf("ResponseError = %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}
