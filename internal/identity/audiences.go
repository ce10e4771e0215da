package identity

import (
	"strings"
)

// Service names the resource a token is for; each service accepts the
// audiences Azure accepts for it.
type Service string

// Services tokens are minted for.
const (
	ServiceARM        Service = "arm"
	ServiceStorage    Service = "storage"
	ServiceEventHubs  Service = "eventhubs"
	ServiceServiceBus Service = "servicebus"
	ServiceIoTHub     Service = "iothub"
)

// knownResources maps a resource URI (no trailing slash, lower case) to its
// service. These are the identifier URIs of Azure's first-party resources.
var knownResources = map[string]Service{
	"https://management.core.windows.net":  ServiceARM,
	"https://management.azure.com":         ServiceARM,
	"https://storage.azure.com":            ServiceStorage,
	"e406a681-f3d4-42a8-90b6-c2b029497af1": ServiceStorage, // Azure Storage's app id
	"https://eventhubs.azure.net":          ServiceEventHubs,
	"https://servicebus.azure.net":         ServiceServiceBus,
	"https://iothubs.azure.net":            ServiceIoTHub,
}

// ResourceFromScope turns an OAuth2 v2 scope ("https://storage.azure.com/.default",
// "https://management.core.windows.net//.default") into the v1 resource the
// token's aud carries ("https://storage.azure.com", "https://management.core.windows.net/").
// Other scopes in the list (openid, profile, offline_access) are ignored.
func ResourceFromScope(scope string) string {
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		return strings.TrimSuffix(s, "/.default")
	}
	return ""
}

// ServiceOf returns the service a resource URI (or audience) names.
func ServiceOf(resource string) (Service, bool) {
	s, ok := knownResources[strings.ToLower(strings.TrimRight(resource, "/"))]
	return s, ok
}

// AudienceMatches reports whether a token audience is one the service
// accepts: any spelling of its resource URI, with or without the slash.
func AudienceMatches(aud string, service Service) bool {
	s, ok := ServiceOf(aud)
	return ok && s == service
}
