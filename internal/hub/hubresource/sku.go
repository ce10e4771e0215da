package hubresource

import (
	"encoding/json"
	"net/http"
	"strings"
)

// skuLimits is what one IoT Hub sku allows.
type skuLimits struct {
	Name, Tier string
	// MaxUnits is the largest capacity; MessagesPerUnit the daily message quota of one unit.
	MaxUnits, MessagesPerUnit int64
}

// skus are IoT Hub's tiers with their unit limits and daily message quotas.
var skus = []skuLimits{
	{"F1", "Free", 1, 8000},
	{"S1", "Standard", 200, 400000},
	{"S2", "Standard", 200, 6000000},
	{"S3", "Standard", 10, 300000000},
	{"B1", "Basic", 200, 400000},
	{"B2", "Basic", 200, 6000000},
	{"B3", "Basic", 10, 300000000},
}

func findSKU(name string) (skuLimits, bool) {
	for _, s := range skus {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return skuLimits{}, false
}

func (s skuLimits) free() bool { return s.Tier == "Free" }

// skuInfo is the stored sku member.
type skuInfo struct {
	Name     string `json:"name"`
	Tier     string `json:"tier"`
	Capacity int64  `json:"capacity"`
}

// prepareSKU validates the sku of a PUT: name required, tier filled from
// the name (it is read-only), capacity defaulting to 1. A hub can't move
// between the free and the paid tiers, nor from Standard down to Basic.
func prepareSKU(body, current object) (skuInfo, skuLimits, error) {
	raw, ok := body.get("sku")
	if !ok {
		return skuInfo{}, skuLimits{}, flat(http.StatusBadRequest, codeArgumentInvalid,
			"The sku property is required: send \"sku\": {\"name\": \"S1\", \"capacity\": 1} (names: F1, S1, S2, S3, B1, B2, B3).")
	}
	o, err := decodeObject(raw, "sku")
	if err != nil {
		return skuInfo{}, skuLimits{}, err
	}
	name, _, err := o.str("name", "sku")
	if err != nil {
		return skuInfo{}, skuLimits{}, err
	}
	limits, ok := findSKU(name)
	if !ok {
		return skuInfo{}, skuLimits{}, invalid("sku.name '%s' is not an IoT Hub sku; use one of F1, S1, S2, S3, B1, B2, B3.", name)
	}
	units, err := intSetting(o, "capacity", "sku", 1, 1, limits.MaxUnits)
	if err != nil {
		return skuInfo{}, skuLimits{}, err
	}
	info := skuInfo{Name: limits.Name, Tier: limits.Tier, Capacity: units}
	if current != nil {
		var was skuInfo
		if raw, ok := current.get("sku"); ok {
			_ = json.Unmarshal(raw, &was)
		}
		if prev, ok := findSKU(was.Name); ok {
			switch {
			case prev.free() != limits.free():
				return skuInfo{}, skuLimits{}, invalid("The hub's sku can't change from %s to %s: a hub can't move between the free tier and a paid tier. Create a new hub instead.", prev.Name, limits.Name)
			case prev.Tier == "Standard" && limits.Tier == "Basic":
				return skuInfo{}, skuLimits{}, invalid("The hub's sku can't change from %s to %s: a hub can't move from the Standard tier down to Basic.", prev.Name, limits.Name)
			}
		}
	}
	return info, limits, nil
}
