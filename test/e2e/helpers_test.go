package e2e

import (
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// operatorCredential is the unmodified azidentity ClientSecretCredential for
// the server's operator, pointed at Outpost's issuer with instance discovery
// off — exactly what a user does with the variables `outpost env` prints.
func operatorCredential(t *testing.T, s *testserver.Server) azcore.TokenCredential {
	t.Helper()
	env := s.Env()
	cred, err := azidentity.NewClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloudConfig(s), Transport: s.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func cloudConfig(s *testserver.Server) cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: s.Endpoint + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: s.Endpoint, Audience: "https://management.core.windows.net/"},
		},
	}
}

// armOptions points an ARM SDK client at the test server, trusting its CA.
func armOptions(s *testserver.Server) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud:     cloudConfig(s),
		Transport: s.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func forEachTier(t *testing.T, f func(t *testing.T, s *testserver.Server)) {
	for _, tier := range testserver.Tiers() {
		t.Run(tier.Name, func(t *testing.T) {
			t.Parallel()
			f(t, testserver.Start(t, tier.Options...))
		})
	}
}

var _ http.RoundTripper = (*http.Transport)(nil)
