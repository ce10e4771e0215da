package arm

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/store"
)

// Installation is what first start creates: the tenant and the default
// subscription every later object lives in.
type Installation struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	DisplayName    string `json:"displayName"`
}

const installationKey = "installation"

// EnsureInstallation loads the installation, creating it (and the default
// subscription) on first start. Concurrent first starts of several nodes on
// one database agree on one installation. tenantID and subscriptionID, when
// not empty, are used on first start (configured ids); later they must match.
func EnsureInstallation(ctx context.Context, st store.Store, tenantID, subscriptionID string) (Installation, error) {
	want := Installation{TenantID: tenantID, SubscriptionID: subscriptionID, DisplayName: "Outpost"}
	if want.TenantID == "" {
		want.TenantID = uuid.NewString()
	}
	if want.SubscriptionID == "" {
		want.SubscriptionID = uuid.NewString()
	}
	raw, err := json.Marshal(want)
	if err != nil {
		return Installation{}, fmt.Errorf("arm: installation: %w", err)
	}
	stored, err := st.Settings().SetIfAbsent(ctx, installationKey, raw)
	if err != nil {
		return Installation{}, fmt.Errorf("arm: installation: %w", err)
	}
	var inst Installation
	if err := json.Unmarshal(stored, &inst); err != nil {
		return Installation{}, fmt.Errorf("arm: installation: decode: %w", err)
	}
	if tenantID != "" && tenantID != inst.TenantID {
		return Installation{}, fmt.Errorf("arm: installation: configured tenant %s differs from the stored tenant %s", tenantID, inst.TenantID)
	}
	if subscriptionID != "" && subscriptionID != inst.SubscriptionID {
		return Installation{}, fmt.Errorf("arm: installation: configured subscription %s differs from the stored subscription %s", subscriptionID, inst.SubscriptionID)
	}
	if _, _, err := st.Resources().Put(ctx, SubscriptionID(inst.SubscriptionID), func(cur *store.Resource) (store.Resource, error) {
		if cur != nil {
			return *cur, nil
		}
		return subscriptionResource(inst), nil
	}); err != nil {
		return Installation{}, fmt.Errorf("arm: installation: subscription: %w", err)
	}
	return inst, nil
}

func subscriptionResource(inst Installation) store.Resource {
	id := SubscriptionID(inst.SubscriptionID)
	doc := Document{}
	doc.Set("id", id)
	doc.Set("subscriptionId", inst.SubscriptionID)
	doc.Set("tenantId", inst.TenantID)
	doc.Set("displayName", inst.DisplayName)
	doc.Set("state", "Enabled")
	doc.Set("authorizationSource", "RoleBased")
	doc.Set("managedByTenants", []any{})
	doc.Set("subscriptionPolicies", map[string]string{
		"locationPlacementId": "Public_2014-09-01",
		"quotaId":             "PayAsYouGo_2014-09-01",
		"spendingLimit":       "Off",
	})
	return store.Resource{
		ID:           id,
		Type:         "Microsoft.Resources/subscriptions",
		Subscription: inst.SubscriptionID,
		Name:         inst.SubscriptionID,
		Body:         doc.Bytes(),
	}
}
