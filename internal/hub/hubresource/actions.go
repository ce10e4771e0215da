package hubresource

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// Action implements arm.ActionType: POST listkeys and the GET reads
// (TypeInfo.Reads) on one hub.
func (h *IotHubs) Action(ctx context.Context, res store.Resource, action string, _ json.RawMessage) (any, error) {
	switch strings.ToLower(action) {
	case "listkeys":
		ps, err := policiesOf(res)
		if err != nil {
			return nil, err
		}
		if ps == nil {
			ps = []Policy{}
		}
		return map[string]any{"value": ps, "nextLink": nil}, nil
	case "iothubstats":
		c, err := h.cfg.Devices.Count(ctx, strings.ToLower(res.Name))
		if err != nil {
			return nil, fmt.Errorf("hubresource: count devices of %s: %w", res.Name, err)
		}
		return map[string]int64{"totalDeviceCount": c.Total, "enabledDeviceCount": c.Enabled, "disabledDeviceCount": c.Disabled}, nil
	case "skus":
		return validSKUs(res), nil
	case "quotametrics":
		return h.quotaMetrics(ctx, res)
	case "routingendpointshealth":
		// Endpoint health is the routing engine's to report; until it runs,
		// no custom endpoint has been tried, so there is nothing to list
		// (Azure lists only endpoints it has state for).
		return map[string]any{"value": []any{}, "nextLink": nil}, nil
	}
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"The IoT hub '%s' has no operation '%s'.", res.Name, action)
}

func storedSKU(res store.Resource) skuLimits {
	var doc struct {
		SKU skuInfo `json:"sku"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	s, ok := findSKU(doc.SKU.Name)
	if !ok {
		s, _ = findSKU("S1")
	}
	return s
}

func storedUnits(res store.Resource) int64 {
	var doc struct {
		SKU skuInfo `json:"sku"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	if doc.SKU.Capacity < 1 {
		return 1
	}
	return doc.SKU.Capacity
}

// validSKUs answers GetValidSkus: the skus the hub can move to.
func validSKUs(res store.Resource) map[string]any {
	cur := storedSKU(res)
	var out []map[string]any
	for _, s := range skus {
		switch {
		case cur.free() != s.free():
			continue
		case cur.Tier == "Standard" && s.Tier == "Basic":
			continue
		}
		scale := "Manual"
		if s.free() {
			scale = "None"
		}
		out = append(out, map[string]any{
			"resourceType": Type,
			"sku":          map[string]string{"name": s.Name, "tier": s.Tier},
			"capacity":     map[string]any{"minimum": 1, "maximum": s.MaxUnits, "default": 1, "scaleType": scale},
		})
	}
	return map[string]any{"value": out, "nextLink": nil}
}

// maxDevices is IoT Hub's device registry quota per hub.
const maxDevices = 1000000

func (h *IotHubs) quotaMetrics(ctx context.Context, res store.Resource) (any, error) {
	c, err := h.cfg.Devices.Count(ctx, strings.ToLower(res.Name))
	if err != nil {
		return nil, fmt.Errorf("hubresource: count devices of %s: %w", res.Name, err)
	}
	s := storedSKU(res)
	// Outpost does not meter messages; the quota is what the sku allows.
	return map[string]any{"value": []map[string]any{
		{"name": "TotalMessages", "currentValue": 0, "maxValue": s.MessagesPerUnit * storedUnits(res)},
		{"name": "TotalDeviceCount", "currentValue": c.Total, "maxValue": maxDevices},
	}, "nextLink": nil}, nil
}

// ProviderActions are the Microsoft.Devices operations on a subscription
// rather than a hub: checkNameAvailability and usages. Register them with
// arm.Registry.AddProviderAction.
func (h *IotHubs) ProviderActions() []arm.ProviderAction {
	return []arm.ProviderAction{
		{
			Namespace: "Microsoft.Devices", Name: "checkNameAvailability", Method: http.MethodPost,
			APIVersions: APIVersions(), Action: "Microsoft.Devices/checkNameAvailability/Action",
			Run: h.checkNameAvailability,
		},
		{
			Namespace: "Microsoft.Devices", Name: "usages", Method: http.MethodGet,
			APIVersions: APIVersions(), Action: "Microsoft.Devices/usages/Read",
			Run: h.usages,
		},
	}
}

// checkNameAvailability answers whether a hub name can be created. az
// relies on nameAvailable:false for a hub that exists: it is how `az iot
// hub show -g` and `identity assign` decide the hub is there.
func (h *IotHubs) checkNameAvailability(ctx context.Context, _ string, body json.RawMessage, _ arm.Principal) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("The request body must be {\"name\": \"<hub name>\"}: %v.", err)
	}
	if problem := nameProblem(in.Name); problem != "" {
		return map[string]any{"nameAvailable": false, "reason": "Invalid", "message": errInvalidName(in.Name, problem).Message}, nil
	}
	_, found, err := h.findHub(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	if found {
		return map[string]any{"nameAvailable": false, "reason": "AlreadyExists",
			"message": fmt.Sprintf("IotHub name '%s' is not available", in.Name)}, nil
	}
	// Azure answers an available name with reason "Invalid" and an empty
	// message (its enum's first value); clients read only nameAvailable.
	return map[string]any{"nameAvailable": true, "reason": "Invalid", "message": ""}, nil
}

// usages answers the subscription's IoT Hub quotas: one free hub, and paid hubs.
func (h *IotHubs) usages(ctx context.Context, sub string, _ json.RawMessage, _ arm.Principal) (any, error) {
	hubs, err := h.cfg.Resources.List(ctx, store.ResourceFilter{Type: Type, Subscription: sub})
	if err != nil {
		return nil, fmt.Errorf("hubresource: list hubs: %w", err)
	}
	var free, paid int
	for _, r := range hubs {
		if storedSKU(r).free() {
			free++
		} else {
			paid++
		}
	}
	base := "/subscriptions/" + sub + "/providers/Microsoft.Devices/usages"
	usage := func(id, name, display string, current, limit int) map[string]any {
		return map[string]any{
			"id": base + "/" + id, "type": base, "unit": "count", "currentValue": current, "limit": limit,
			"name": map[string]string{"value": name, "localizedValue": display},
		}
	}
	return map[string]any{"value": []map[string]any{
		usage("freeHubCount", "FreeHubCount", "Free Hub Count", free, 1),
		usage("paidIotHubCount", "PaidIotHubCount", "Paid IoT Hub Count", paid, 100),
	}}, nil
}
