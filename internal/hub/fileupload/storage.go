package fileupload

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// storageResource is the audience of the hub's tokens for storage.
const storageResource = "https://storage.azure.com/"

const (
	// delegationKeyLifetime is how long a requested user delegation key is
	// valid (Azure allows up to 7 days). A key is reused while it outlives a
	// fresh SAS by delegationKeyMargin, so one key serves about a day of
	// uploads at the longest SAS TTL (24 h).
	delegationKeyLifetime = 48 * time.Hour
	delegationKeyMargin   = 5 * time.Minute
	// maxCachedClients bounds the client caches; hubs change storage
	// settings rarely, so reaching it means churn and a reset is cheap.
	maxCachedClients = 1024
)

// Doer sends an HTTP request: *egress.Client, and azcore's
// policy.Transporter is the same method.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// TokenSource mints tokens for a resource's managed identity (*app.App).
type TokenSource interface {
	ManagedIdentityToken(ctx context.Context, resourceID, userAssignedID, resource string) (string, error)
}

// storage is the hub's side of the storage account: azblob clients over the
// egress with the hub's own credentials, and SAS signing.
//
// Lock order: clientsMu and keysMu are never held together, and neither is
// held across a network call.
type storage struct {
	egress Doer
	tokens TokenSource
	now    func() time.Time

	clientsMu sync.Mutex
	clients   map[string]*service.Client

	keysMu sync.Mutex
	keys   map[string]delegationKey
}

type delegationKey struct {
	cred   *service.UserDelegationCredential
	expiry time.Time
}

func newStorage(egress Doer, tokens TokenSource, now func() time.Time) *storage {
	return &storage{egress: egress, tokens: tokens, now: now,
		clients: map[string]*service.Client{}, keys: map[string]delegationKey{}}
}

// identityKey names the credentials of settings: the account key, or the
// hub's identity (system-assigned or the named user-assigned one).
func identityKey(s Settings, hubResourceID string) string {
	if s.IdentityBased {
		return "id|" + strings.ToLower(hubResourceID) + "|" + strings.ToLower(s.UserAssignedIdentity)
	}
	sum := sha256.Sum256([]byte(s.AccountKey))
	return "key|" + s.Account + "|" + hex.EncodeToString(sum[:8])
}

func (st *storage) clientOptions(transport Doer) *service.ClientOptions {
	return &service.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: transport,
		// A device is waiting on most of these calls: one quick retry, then
		// the device's own retry policy takes over.
		Retry:     policy.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, TryTimeout: 30 * time.Second},
		Telemetry: policy.TelemetryOptions{ApplicationID: "outpost-iothub"},
	}}
}

// client returns the service client acting with the hub's credentials.
func (st *storage) client(s Settings, hubResourceID string) (*service.Client, error) {
	key := s.ServiceURL() + "|" + identityKey(s, hubResourceID)
	st.clientsMu.Lock()
	c, ok := st.clients[key]
	st.clientsMu.Unlock()
	if ok {
		return c, nil
	}
	var err error
	if s.IdentityBased {
		c, err = service.NewClient(s.ServiceURL(), st.credential(s, hubResourceID), st.clientOptions(st.egress))
	} else {
		var cred *service.SharedKeyCredential
		if cred, err = service.NewSharedKeyCredential(s.Account, s.AccountKey); err == nil {
			c, err = service.NewClientWithSharedKeyCredential(s.ServiceURL(), cred, st.clientOptions(st.egress))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fileupload: storage client for %s: %w", s.Account, err)
	}
	st.clientsMu.Lock()
	if len(st.clients) >= maxCachedClients {
		clear(st.clients)
	}
	st.clients[key] = c
	st.clientsMu.Unlock()
	return c, nil
}

func (st *storage) credential(s Settings, hubResourceID string) identityCredential {
	return identityCredential{tokens: st.tokens, hubResourceID: hubResourceID, userAssigned: s.UserAssignedIdentity, now: st.now}
}

// delegationClient is the client that asks for user delegation keys.
// azblob derives the key's account name from the first label of the URL's
// host, which for a path-style endpoint (https://127.0.0.1:10000/acct) is
// wrong and would break every signature; so for those the client addresses
// {account}.path-style.invalid and the transport sends the request to the
// real endpoint.
func (st *storage) delegationClient(s Settings, hubResourceID string) (*service.Client, error) {
	if !s.pathStyle() {
		return st.client(s, hubResourceID)
	}
	c, err := service.NewClient("https://"+strings.ToLower(s.Account)+".path-style.invalid/",
		st.credential(s, hubResourceID), st.clientOptions(pathStyleTransport{base: s.Endpoint, next: st.egress}))
	if err != nil {
		return nil, fmt.Errorf("fileupload: storage client for %s: %w", s.Account, err)
	}
	return c, nil
}

// pathStyleTransport sends a request addressed to the placeholder host to
// the path-style endpoint base.
type pathStyleTransport struct {
	base *url.URL
	next Doer
}

func (p pathStyleTransport) Do(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	u := *r.URL
	u.Scheme, u.Host = p.base.Scheme, p.base.Host
	u.Path = strings.TrimRight(p.base.Path, "/") + r.URL.Path
	u.RawPath = ""
	r2.URL, r2.Host = &u, p.base.Host
	return p.next.Do(r2)
}

// delegationKey returns a cached user delegation key of the hub's identity
// for the account, fetching one when none outlives a SAS minted now.
func (st *storage) delegationKey(ctx context.Context, s Settings, hubResourceID string) (*service.UserDelegationCredential, error) {
	key := s.ServiceURL() + "|" + identityKey(s, hubResourceID)
	now := st.now()
	st.keysMu.Lock()
	k, ok := st.keys[key]
	st.keysMu.Unlock()
	if ok && k.expiry.After(now.Add(s.SASTTL+delegationKeyMargin)) {
		return k.cred, nil
	}
	c, err := st.delegationClient(s, hubResourceID)
	if err != nil {
		return nil, err
	}
	start, expiry := now.UTC().Add(-delegationKeyMargin), now.UTC().Add(delegationKeyLifetime)
	cred, err := c.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start: to.Ptr(start.Format(sas.TimeFormat)), Expiry: to.Ptr(expiry.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("fileupload: get user delegation key of account %s: %w", s.Account, err)
	}
	st.keysMu.Lock()
	if len(st.keys) >= maxCachedClients {
		clear(st.keys)
	}
	st.keys[key] = delegationKey{cred: cred, expiry: expiry}
	st.keysMu.Unlock()
	return cred, nil
}

// blobSAS signs a SAS for one blob, read and write (sp=rw, sr=b, https
// only), as IoT Hub grants a device: a service SAS with the account key, or
// a user delegation SAS with the hub identity's delegation key. It returns
// the query without the leading '?'.
func (st *storage) blobSAS(ctx context.Context, s Settings, hubResourceID, blobName string, expiry time.Time) (string, error) {
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		ExpiryTime:    expiry.UTC(),
		Permissions:   (&sas.BlobPermissions{Read: true, Write: true}).String(),
		ContainerName: s.Container,
		BlobName:      blobName,
	}
	var q sas.QueryParameters
	if s.IdentityBased {
		udc, err := st.delegationKey(ctx, s, hubResourceID)
		if err != nil {
			return "", err
		}
		if q, err = v.SignWithUserDelegation(udc); err != nil {
			return "", fmt.Errorf("fileupload: sign user delegation SAS: %w", err)
		}
	} else {
		cred, err := service.NewSharedKeyCredential(s.Account, s.AccountKey)
		if err != nil {
			return "", fmt.Errorf("fileupload: account key of %s: %w", s.Account, err)
		}
		if q, err = v.SignWithSharedKey(cred); err != nil {
			return "", fmt.Errorf("fileupload: sign service SAS: %w", err)
		}
	}
	return q.Encode(), nil
}

// blobProperties reads a blob's size and last-modified time with the hub's
// own credentials.
func (st *storage) blobProperties(ctx context.Context, s Settings, hubResourceID, container, blobName string) (size int64, modified time.Time, err error) {
	c, err := st.client(s, hubResourceID)
	if err != nil {
		return 0, time.Time{}, err
	}
	props, err := c.NewContainerClient(container).NewBlobClient(blobName).GetProperties(ctx, nil)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("fileupload: blob properties of %s/%s: %w", container, blobName, err)
	}
	if props.ContentLength != nil {
		size = *props.ContentLength
	}
	if props.LastModified != nil {
		modified = props.LastModified.UTC()
	}
	return size, modified, nil
}

// identityCredential is an azcore.TokenCredential acting as the hub's
// managed identity, through the in-process token source.
type identityCredential struct {
	tokens        TokenSource
	hubResourceID string
	userAssigned  string
	now           func() time.Time
}

// GetToken implements azcore.TokenCredential. Every scope azblob asks for is
// storage's.
func (c identityCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.tokens.ManagedIdentityToken(ctx, c.hubResourceID, c.userAssigned, storageResource)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("fileupload: token of %s: %w", describeIdentity(c.hubResourceID, c.userAssigned, ""), err)
	}
	exp := peekClaims(tok).expiry()
	if exp.IsZero() {
		// azcore refreshes on expiry; without a readable exp, ask again soon.
		exp = c.now().Add(5 * time.Minute)
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// claims are the token claims messages and caching use. They are read
// without verification: the token came from our own issuer, and nothing
// is decided on them.
type claims struct {
	OID string  `json:"oid"`
	Exp float64 `json:"exp"`
}

func (c claims) expiry() time.Time {
	if c.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(c.Exp), 0)
}

func peekClaims(jwt string) claims {
	var c claims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c
	}
	_ = json.Unmarshal(b, &c)
	return c
}

// describeIdentity names the identity in messages a person acts on.
func describeIdentity(hubResourceID, userAssigned, principalID string) string {
	var d string
	if userAssigned != "" {
		d = "the hub's user-assigned identity " + userAssigned
	} else {
		d = "the hub's system-assigned identity"
	}
	if principalID != "" {
		d += " (principal " + principalID + ")"
	}
	return d
}

// storageFailure extracts the status, storage error code and message of a
// failed storage call; ok is false for failures that never got an answer.
func storageFailure(err error) (status int, code, message string, ok bool) {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return 0, "", "", false
	}
	code = re.ErrorCode
	if re.RawResponse != nil && re.RawResponse.Request != nil {
		// azcore has read the body into the response for the error.
		message = xmlMessage(re.Error())
	}
	return re.StatusCode, code, message, true
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
	return strings.TrimSpace(msg)
}

// isBlobNotFound reports whether a storage call failed because the blob is
// not there.
func isBlobNotFound(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return true
	}
	var re *azcore.ResponseError
	// HEAD answers carry no body, so the code may only be in the status.
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && !bloberror.HasCode(err, bloberror.ContainerNotFound)
}
