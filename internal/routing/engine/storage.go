package engine

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// maxNameCollisions bounds the _n suffixes tried for one window's blob.
const maxNameCollisions = 1000

// storageSender uploads window blobs with the azblob SDK over the egress
// client, so the same endpoint works against Outpost, Azurite or Azure.
type storageSender struct {
	egress Doer
	tokens *tokenCache
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*container.Client // endpoint fingerprint + hub
}

func newStorageSender(egress Doer, tokens *tokenCache, now func() time.Time) *storageSender {
	return &storageSender{egress: egress, tokens: tokens, now: now, clients: map[string]*container.Client{}}
}

func (s *storageSender) client(hubID string, ep *Endpoint) (*container.Client, error) {
	key := strings.ToLower(hubID) + "|" + ep.fingerprint
	s.mu.Lock()
	c := s.clients[key]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: s.egress,
		// The worker retries with its own backoff and health accounting.
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "outpost-iothub-routing"},
	}}
	u := ep.ServiceURL + ep.Container
	var err error
	if ep.IdentityBased {
		c, err = container.NewClient(u, identityCredential{tokens: s.tokens, hubID: hubID, userAssigned: ep.UserAssigned}, opts)
	} else {
		var cred *container.SharedKeyCredential
		if cred, err = container.NewSharedKeyCredential(ep.Account, ep.AccountKey); err == nil {
			c, err = container.NewClientWithSharedKeyCredential(u, cred, opts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("engine: storage client for %s: %w", u, err)
	}
	s.mu.Lock()
	if len(s.clients) > 1024 {
		clear(s.clients) // configuration churn; clients are cheap to rebuild
	}
	s.clients[key] = c
	s.mu.Unlock()
	return c, nil
}

// upload writes data as a new block blob named name — or name_1, name_2, …
// when a blob of that name exists (a second window in the same minute, or
// a window re-sent after a crash): a window never overwrites another.
func (s *storageSender) upload(ctx context.Context, hubID string, ep *Endpoint, name string, data []byte) error {
	c, err := s.client(hubID, ep)
	if err != nil {
		return err
	}
	contentType := "avro/binary"
	if ep.Encoding == "json" {
		contentType = "application/json"
	}
	for n := 0; n < maxNameCollisions; n++ {
		bc := c.NewBlockBlobClient(suffixed(name, n))
		_, err := bc.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
				IfNoneMatch: to.Ptr(azcore.ETagAny),
			}},
		})
		if err == nil {
			return nil
		}
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
			continue
		}
		return storageError(err, ep.ServiceURL+ep.Container)
	}
	return fmt.Errorf("engine: %d blobs named %s… exist already", maxNameCollisions, name)
}

// storageError renders a storage refusal like the messaging ones:
// "403 from https://acct.blob.…/c: AuthorizationPermissionMismatch: …".
func storageError(err error, where string) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("upload to %s: %w", where, err)
	}
	detail := re.ErrorCode
	if msg := xmlMessage(re.Error()); msg != "" {
		detail += ": " + msg
	}
	return &SendError{Status: re.StatusCode, URL: where, Detail: detail}
}

// xmlMessage pulls the storage <Message> text out of an azcore error text
// (which embeds the response body), first line only.
func xmlMessage(s string) string {
	_, after, ok := strings.Cut(s, "<Message>")
	if !ok {
		return ""
	}
	msg, _, _ := strings.Cut(after, "</Message>")
	msg, _, _ = strings.Cut(msg, "\n")
	msg = strings.TrimSpace(html.UnescapeString(msg)) // XML's entities are a subset of HTML's
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	return msg
}

// identityCredential is an azcore.TokenCredential acting as a hub identity
// through the engine's token cache.
type identityCredential struct {
	tokens       *tokenCache
	hubID        string
	userAssigned string
}

// GetToken implements azcore.TokenCredential; every scope azblob asks for
// is storage's.
func (c identityCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.tokens.token(ctx, c.hubID, c.userAssigned, AudienceStorage)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	exp := tokenExpiry(tok)
	if exp.IsZero() {
		exp = c.tokens.now().Add(5 * time.Minute)
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}
