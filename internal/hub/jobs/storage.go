package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/egress"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/msi/mitoken"
	"github.com/outpost-iot/outpost/internal/store"
)

// storageResource is the audience of the hub's tokens for storage.
const storageResource = "https://storage.azure.com/"

// storageBlobDataContributor is the role the seed tells users to assign.
const storageBlobDataContributor = "Storage Blob Data Contributor (ba92f5b4-2d11-453d-a403-e96b0029c9fe)"

// Egress sends requests to user-supplied URLs and checks them first;
// *egress.Client implements it (Do also makes it an azcore Transporter).
type Egress interface {
	Do(*http.Request) (*http.Response, error)
	Check(ctx context.Context, u *url.URL) error
}

// TokenSource mints tokens for a resource's managed identity (*app.App).
type TokenSource interface {
	ManagedIdentityToken(ctx context.Context, resourceID, userAssignedID, resource string) (string, error)
}

// ResourceGetter reads ARM resources (store.Resources): the hub's identity
// block decides which identity a job uses.
type ResourceGetter interface {
	Get(ctx context.Context, id string) (store.Resource, error)
}

// failure is a job failure whose message a person acts on; it becomes the
// job's failureReason.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func failf(format string, args ...any) error { return &failure{sprintf(format, args...)} }

// credentials is how a job reaches storage: the SAS in each URI
// (keyBased), or a managed identity of the hub.
type credentials struct {
	identityBased bool
	hubID         string
	userAssigned  string
	principalID   string
}

func (c credentials) describe() string {
	switch {
	case !c.identityBased:
		return "the SAS in the container URI"
	case c.userAssigned != "":
		return sprintf("the hub's user-assigned identity %s (principal %s)", c.userAssigned, c.principalID)
	}
	return sprintf("the hub's system-assigned identity (principal %s)", c.principalID)
}

// resolveCredentials applies the seed's rules: keyBased uses the SAS in the
// URIs; identityBased uses the named user-assigned identity, which must be
// on the hub, or else the system-assigned one, which must exist.
func (r *Runner) resolveCredentials(ctx context.Context, rec record) (credentials, error) {
	if rec.StorageAuthenticationType != AuthIdentityBased {
		return credentials{}, nil
	}
	res, err := r.cfg.Resources.Get(ctx, rec.HubResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return credentials{}, failf("The hub %s no longer exists.", rec.Hub)
	}
	if err != nil {
		return credentials{}, fmt.Errorf("jobs: read hub %s: %w", rec.HubResourceID, err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return credentials{}, fmt.Errorf("jobs: decode hub %s: %w", rec.HubResourceID, err)
	}
	var b msi.Block
	_ = doc.Decode("identity", &b)
	var assigned []string
	for id := range b.UserAssignedIdentities {
		assigned = append(assigned, id)
	}
	if rec.Identity != nil && rec.Identity.UserAssignedIdentity != "" {
		want := rec.Identity.UserAssignedIdentity
		for id, ref := range b.UserAssignedIdentities {
			if strings.EqualFold(id, want) {
				pid := ""
				if ref != nil {
					pid = ref.PrincipalID
				}
				return credentials{identityBased: true, hubID: rec.HubResourceID, userAssigned: id, principalID: pid}, nil
			}
		}
		if len(assigned) == 0 {
			return credentials{}, failf("The job asks for the user-assigned identity %s, but hub %s has no user-assigned identity. Add it to the hub (identity.type UserAssigned, identity.userAssignedIdentities), or leave identity.userAssignedIdentity out to use the hub's system-assigned identity.", want, rec.Hub)
		}
		return credentials{}, failf("The job asks for the user-assigned identity %s, which is not assigned to hub %s (it has %s). Add it to the hub's identity.userAssignedIdentities, or name one of those.", want, rec.Hub, strings.Join(assigned, ", "))
	}
	if b.System() && b.PrincipalID != "" {
		return credentials{identityBased: true, hubID: rec.HubResourceID, principalID: b.PrincipalID}, nil
	}
	if len(assigned) > 0 {
		return credentials{}, failf("storageAuthenticationType identityBased without identity.userAssignedIdentity uses the hub's system-assigned identity, and hub %s has none. Name one of its user-assigned identities (%s) in identity.userAssignedIdentity, or turn on its system-assigned identity.", rec.Hub, strings.Join(assigned, ", "))
	}
	return credentials{}, failf("storageAuthenticationType is identityBased, but hub %s has no managed identity. Turn on its system-assigned identity (identity.type SystemAssigned) or assign a user-assigned one and name it in identity.userAssignedIdentity; then grant that identity %s on the storage account.", rec.Hub, storageBlobDataContributor)
}

// containerRef is one container URI of a job.
type containerRef struct {
	field   string // inputBlobContainerUri or outputBlobContainerUri
	uri     string // as given, SAS included
	account string
	name    string
}

func newContainerRef(field, uri string) containerRef {
	c := containerRef{field: field, uri: uri}
	u, err := url.Parse(uri)
	if err != nil {
		return c
	}
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	host := u.Hostname()
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") {
		// Path-style: https://host:port/{account}/{container}.
		c.account = path[0]
		if len(path) > 1 {
			c.name = path[1]
		}
	} else {
		c.account, _, _ = strings.Cut(host, ".")
		c.name = path[0]
	}
	return c
}

func (c containerRef) describe() string {
	return sprintf("container '%s' of storage account '%s' (%s)", c.name, c.account, c.field)
}

// open checks the URI against the egress policy (before any token is
// minted or any request sent) and returns an azblob client over the egress.
func (r *Runner) open(ctx context.Context, c containerRef, creds credentials) (*container.Client, error) {
	u, err := url.Parse(c.uri)
	if err != nil {
		return nil, failf("%s is not a URL: %v", c.field, err)
	}
	if creds.identityBased {
		// The identity, not a SAS, authorizes: never send one along.
		u.RawQuery = ""
	}
	if err := r.cfg.Egress.Check(ctx, u); err != nil {
		return nil, egressFailure(c, err)
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: r.cfg.Egress,
		Retry:     policy.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond, TryTimeout: time.Minute},
		Telemetry: policy.TelemetryOptions{ApplicationID: "outpost-iothub-jobs"},
	}}
	var cc *container.Client
	if creds.identityBased {
		cc, err = container.NewClient(u.String(), identityCredential{tokens: r.cfg.Tokens, creds: creds, now: r.cfg.Now}, opts)
	} else {
		cc, err = container.NewClientWithNoCredential(u.String(), opts)
	}
	if err != nil {
		return nil, failf("%s: %v", c.field, err)
	}
	return cc, nil
}

func egressFailure(c containerRef, err error) error {
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return failf("The hub may not reach %s: %s", redact(c.uri), refused.Error())
	}
	return failf("The hub could not reach %s (%s): %v", redact(c.uri), c.field, err)
}

// storageFailure turns a failed storage call into a reason naming the
// identity, the container and what to change.
func storageFailure(c containerRef, creds credentials, op string, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return err
	}
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return egressFailure(c, err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return failf("Could not %s %s: %v", op, c.describe(), err)
	}
	code := re.ErrorCode
	switch {
	case re.StatusCode == http.StatusNotFound && bloberror.HasCode(err, bloberror.ContainerNotFound):
		return failf("Could not %s: %s does not exist. Create it, or fix %s.", op, c.describe(), c.field)
	case re.StatusCode == http.StatusNotFound:
		return failf("Could not %s: it does not exist in %s.", op, c.describe())
	case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
		if creds.identityBased {
			return failf("Storage refused to let %s %s in %s (%d %s). Grant that identity %s on the storage account or the container, and allow it through the account's network rules (a user-assigned identity needs public network access).",
				creds.describe(), op, c.describe(), re.StatusCode, code, storageBlobDataContributor)
		}
		return failf("Storage refused the SAS of %s to %s (%d %s). The SAS must be valid now and grant %s.",
			c.field, op, re.StatusCode, code, map[string]string{"inputBlobContainerUri": "Read (sp=r)", "outputBlobContainerUri": "Read, Write and Delete (sp=rwd)"}[c.field])
	}
	return failf("Could not %s in %s: storage answered %d %s.", op, c.describe(), re.StatusCode, code)
}

// download opens a blob for streaming, retrying broken reads.
func download(ctx context.Context, cc containerClient, name string) (io.ReadCloser, int64, error) {
	resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	var size int64
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	return resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3}), size, nil
}

// containerClient is azblob's container client.
type containerClient = *container.Client

// upload streams body into a block blob.
func upload(ctx context.Context, cc containerClient, name string, body io.Reader) error {
	_, err := cc.NewBlockBlobClient(name).UploadStream(ctx, body, &blockblob.UploadStreamOptions{
		BlockSize: 4 << 20, Concurrency: 4,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: ptr("text/plain; charset=utf-8")},
	})
	return err
}

func ptr[T any](v T) *T { return &v }

// identityCredential is an azcore.TokenCredential acting as the hub's
// managed identity through the in-process token source.
type identityCredential struct {
	tokens TokenSource
	creds  credentials
	now    func() time.Time
}

func (c identityCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.tokens.ManagedIdentityToken(ctx, c.creds.hubID, c.creds.userAssigned, storageResource)
	if err != nil {
		return azcore.AccessToken{}, &failure{sprintf("Could not get a storage token for %s: %v", c.creds.describe(), err)}
	}
	exp := mitoken.Expiry(tok)
	if exp.IsZero() {
		exp = c.now().Add(5 * time.Minute)
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}
