package outposttest

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// ResourceManagerAudience is the token audience of the resource manager,
// as in Azure's public cloud (Cloud sets it for cloud.ResourceManager).
const ResourceManagerAudience = "https://management.core.windows.net/"

// Option changes how Start runs Outpost.
type Option func(*options)

type options struct {
	minRoutingBatchFrequency time.Duration
}

// WithMinRoutingBatchFrequency lets storage routing endpoints batch as
// often as every d (between 1 s and 720 s) instead of Azure's minimum of
// 60 s, so a test sees routed blobs in seconds. Endpoints still write a
// blob only every batchFrequencyInSeconds: set that low as well. Note that
// Azure refuses a batchFrequencyInSeconds below 60.
func WithMinRoutingBatchFrequency(d time.Duration) Option {
	return func(o *options) { o.minRoutingBatchFrequency = d }
}

// Outpost is an Outpost installation running in the test's process. Its
// fields are read-only.
type Outpost struct {
	// ResourceManagerEndpoint is the HTTPS base URL of the resource manager
	// and of the token issuer, e.g. "https://127.0.4.17" (no trailing slash).
	ResourceManagerEndpoint string
	// TenantID is the installation's tenant.
	TenantID string
	// SubscriptionID is the default subscription, owned by the operator.
	SubscriptionID string
	// OperatorClientID is the client (application) id Credential signs in
	// with.
	OperatorClientID string
	// OperatorPrincipalID is the object id of the operator service
	// principal. It owns the subscription, which, as in Azure, grants no
	// data-plane access: assign it a data role (e.g. Storage Blob Data
	// Reader) to read blobs with Credential.
	OperatorPrincipalID string
	// CAFile is the path of the PEM certificate of Outpost's local CA, for
	// clients outside this process (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS).
	CAFile string
	// DNSSuffix is the domain resource host names live under:
	// {hub}.{suffix}, {account}.blob.{suffix}.
	DNSSuffix string

	server     *testserver.Server
	client     *http.Client // shared by every SDK client this package configures
	credential *azidentity.ClientSecretCredential
}

// Start runs Outpost in process on a loopback address of its own, waits
// until it is ready and stops it when the test ends. It fails the test if
// Outpost cannot start.
func Start(t testing.TB, opts ...Option) *Outpost {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var serverOpts []testserver.Option
	if o.minRoutingBatchFrequency != 0 {
		serverOpts = append(serverOpts, testserver.WithConfig(func(c *config.Config) {
			c.Hub.RoutingMinBatchFrequency = o.minRoutingBatchFrequency
		}))
	}
	s := testserver.Start(t, serverOpts...)
	installation, operator := s.App.Installation(), s.App.Operator()
	// The SDK pipelines bound each try themselves (policy.RetryOptions);
	// a whole-request timeout would cut a long blob download short.
	sdkClient := s.HTTPClient()
	sdkClient.Timeout = 0
	out := &Outpost{
		ResourceManagerEndpoint: s.Endpoint,
		TenantID:                installation.TenantID,
		SubscriptionID:          installation.SubscriptionID,
		OperatorClientID:        operator.ClientID,
		OperatorPrincipalID:     operator.ObjectID,
		CAFile:                  s.CAFile,
		DNSSuffix:               s.Config.DNSSuffix,
		server:                  s,
		client:                  sdkClient,
	}
	cred, err := azidentity.NewClientSecretCredential(operator.TenantID, operator.ClientID, operator.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: out.ClientOptions(),
			// Instance discovery asks the public cloud whether the authority
			// is known; Outpost is not, and a test must not leave the machine.
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatalf("outposttest: operator credential: %v", err)
	}
	out.credential = cred
	return out
}

// Credential is the operator service principal's credential: an unmodified
// azidentity.ClientSecretCredential that gets its tokens from Outpost's
// token endpoint. It works with every Azure SDK client given
// ARMClientOptions or ClientOptions, for any audience Outpost serves
// (resource manager, storage, IoT Hub, Event Hubs, Service Bus).
func (o *Outpost) Credential() azcore.TokenCredential { return o.credential }

// Cloud is the cloud configuration naming Outpost as the authority host
// and the resource manager, as `az cloud register` would.
func (o *Outpost) Cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: o.ResourceManagerEndpoint + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: o.ResourceManagerEndpoint, Audience: ResourceManagerAudience},
		},
	}
}

// ClientOptions are options for data-plane clients (azblob and others):
// the Cloud configuration and a transport that trusts Outpost's CA and
// reaches its host names. Retries keep the SDK's defaults.
func (o *Outpost) ClientOptions() azcore.ClientOptions {
	return policy.ClientOptions{Cloud: o.Cloud(), Transport: o.client}
}

// ARMClientOptions are options for resource-manager clients (armresources,
// armiothub, armauthorization, armmsi…): ClientOptions, pointed at
// Outpost's resource manager through the cloud configuration.
func (o *Outpost) ARMClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: o.ClientOptions()}
}

// HTTPClient returns a new HTTP client that trusts Outpost's CA (and only
// it) and dials host names under DNSSuffix at Outpost's address, whatever
// DNS says. Its 30 s timeout makes a hung request fail the test rather
// than hang it.
func (o *Outpost) HTTPClient() *http.Client { return o.server.HTTPClient() }

// CertPool holds Outpost's CA certificate only.
func (o *Outpost) CertPool() *x509.CertPool { return o.server.CertPool() }

// BlobEndpoint is the blob service URL of a storage account, with a
// trailing slash, as the account's primaryEndpoints.blob reports it:
// https://{account}.blob.{suffix}/ (with the port when it is not 443).
func (o *Outpost) BlobEndpoint(account string) string {
	return "https://" + account + ".blob." + o.DNSSuffix + o.portSuffix() + "/"
}

// Env is the environment `outpost env` prints for this installation
// (OUTPOST_ENDPOINT, SSL_CERT_FILE, AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST…), for running other programs —
// az, node, a built Go binary — against it.
func (o *Outpost) Env() map[string]string { return o.server.Env() }

// portSuffix is ":port" when Outpost is not on 443, else "".
func (o *Outpost) portSuffix() string {
	u, err := url.Parse(o.ResourceManagerEndpoint)
	if err != nil || u.Port() == "" || u.Port() == "443" {
		return ""
	}
	return ":" + u.Port()
}
