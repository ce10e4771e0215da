package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// staticToken is a bearer credential for the control plane until the
// identity plane issues real tokens.
type staticToken struct{}

func (staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "outpost-test", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// armOptions points an ARM SDK client at the test server, trusting its CA.
func armOptions(s *testserver.Server) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: s.Endpoint + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: s.Endpoint, Audience: "https://management.core.windows.net/"},
			},
		},
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
