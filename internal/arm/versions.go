package arm

import (
	"net/http"
	"slices"
	"strings"
)

// resourceManagerAPIVersions are the Microsoft.Resources api-versions
// accepted for subscriptions, tenants, locations, providers, resource groups
// and generic resources: every version the Azure SDKs and az 2.45 send.
var resourceManagerAPIVersions = []string{
	"2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
	"2022-12-01", "2022-09-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01",
	"2020-06-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-08-01", "2019-07-01",
	"2019-06-01", "2019-05-10", "2019-05-01", "2018-05-01", "2018-02-01", "2017-05-10",
	"2016-09-01", "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
}

// metadataAPIVersions are the versions of GET /metadata/endpoints.
var metadataAPIVersions = []string{"2022-09-01", "2020-06-01", "2019-05-01", "2018-01-01", "2015-01-01"}

func checkAPIVersion(r *http.Request, supported []string) (string, error) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return "", Errorf(http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests. Supported versions are '%s'.", strings.Join(supported, ","))
	}
	if !slices.ContainsFunc(supported, func(s string) bool { return strings.EqualFold(s, v) }) {
		return "", Errorf(http.StatusBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(supported, ","))
	}
	return v, nil
}

func checkTypeAPIVersion(r *http.Request, info TypeInfo, location string) (string, error) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return "", Errorf(http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests. Supported versions for '%s' are '%s'.", info.FullType(), strings.Join(info.APIVersions, ","))
	}
	if !info.SupportsAPIVersion(v) {
		return "", Errorf(http.StatusBadRequest, "NoRegisteredProviderFound",
			"No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported api-versions are '%s'.",
			location, v, info.Type, strings.Join(info.APIVersions, ", "))
	}
	return v, nil
}
