package arm

import (
	"net/http"
	"strings"
)

// Location is an Azure region name Outpost accepts. Everything runs on one
// machine, so a location is a label: templates and clients just need the
// names they already use to be valid.
type Location struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// DefaultLocations are the public Azure regions clients commonly name.
func DefaultLocations() []Location {
	names := [][2]string{
		{"eastus", "East US"}, {"eastus2", "East US 2"}, {"westus", "West US"}, {"westus2", "West US 2"},
		{"westus3", "West US 3"}, {"centralus", "Central US"}, {"northcentralus", "North Central US"},
		{"southcentralus", "South Central US"}, {"westcentralus", "West Central US"},
		{"canadacentral", "Canada Central"}, {"brazilsouth", "Brazil South"},
		{"northeurope", "North Europe"}, {"westeurope", "West Europe"}, {"uksouth", "UK South"},
		{"ukwest", "UK West"}, {"francecentral", "France Central"}, {"germanywestcentral", "Germany West Central"},
		{"swedencentral", "Sweden Central"}, {"switzerlandnorth", "Switzerland North"}, {"norwayeast", "Norway East"},
		{"eastasia", "East Asia"}, {"southeastasia", "Southeast Asia"}, {"japaneast", "Japan East"},
		{"japanwest", "Japan West"}, {"koreacentral", "Korea Central"}, {"australiaeast", "Australia East"},
		{"centralindia", "Central India"}, {"southafricanorth", "South Africa North"}, {"uaenorth", "UAE North"},
		{"local", "Local"},
	}
	out := make([]Location, len(names))
	for i, n := range names {
		out[i] = Location{Name: n[0], DisplayName: n[1]}
	}
	return out
}

// normalizeLocation maps "West US" or "WESTUS" to "westus"; ok is false when
// the name is not one of locs.
func normalizeLocation(locs []Location, name string) (string, bool) {
	squashed := strings.ToLower(strings.ReplaceAll(name, " ", ""))
	for _, l := range locs {
		if l.Name == squashed {
			return l.Name, true
		}
	}
	return "", false
}

// ResolveLocation checks a tracked resource's location as ARM does for
// every provider: required, one of locs (any spelling, "West US" or
// "WESTUS"), and fixed once the resource exists (stored is the stored
// location, "" on create). It returns the canonical name; typ and id only
// word the errors.
func ResolveLocation(locs []Location, typ string, id ResourceID, location, stored string) (string, error) {
	if location == "" {
		return "", Errorf(http.StatusBadRequest, "LocationRequired",
			"The location property is required for this definition. Add \"location\": \"<region>\", e.g. \"westus\" (az uses the resource group's).")
	}
	canon, ok := normalizeLocation(locs, location)
	if !ok {
		names := make([]string, len(locs))
		for i, l := range locs {
			names[i] = l.Name
		}
		return "", Errorf(http.StatusBadRequest, "LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.", location, typ, strings.Join(names, ","))
	}
	if stored != "" && stored != canon {
		return "", Errorf(http.StatusConflict, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			id.Name(), stored, id.ResourceGroup, canon)
	}
	return canon, nil
}
