package fileupload

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// Authentication types of storageEndpoints.$default.
const (
	KeyBased      = "keyBased"
	IdentityBased = "identityBased"
)

// Settings is a hub's file upload configuration, interpreted.
type Settings struct {
	Container string
	// Account is the storage account name (AccountName of the connection
	// string); it names the account in SAS signatures.
	Account string
	// AccountKey is the base64 key; empty for identity-based settings
	// without one.
	AccountKey string
	// Endpoint is the account's blob service endpoint, without a trailing
	// slash: BlobEndpoint when given (path-style endpoints such as
	// https://127.0.0.1:10000/devstoreaccount1 keep their path), else
	// {protocol}://{AccountName}.blob.{EndpointSuffix}.
	Endpoint *url.URL
	SASTTL   time.Duration
	// IdentityBased is true for authenticationType identityBased.
	IdentityBased bool
	// UserAssignedIdentity is the resource id of the identity to use; empty
	// is the hub's system-assigned identity.
	UserAssignedIdentity string
	Notifications        bool
	LockDuration         time.Duration
	TTL                  time.Duration
	MaxDeliveryCount     int
}

// HostName is what the device gets as hostName: the endpoint without its
// scheme, with any path, because the device SDKs paste it verbatim into
// https://{hostName}/{container}/{blob}{sas}.
func (s Settings) HostName() string {
	return s.Endpoint.Host + strings.TrimRight(s.Endpoint.EscapedPath(), "/")
}

// ServiceURL is the blob service URL with a trailing slash.
func (s Settings) ServiceURL() string {
	u := *s.Endpoint
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/") + "/"
}

// BlobURL is the URL of one blob of the container (names escaped per
// segment, so '/' stays a separator).
func (s Settings) BlobURL(blobName string) string {
	segs := strings.Split(blobName, "/")
	for i, p := range segs {
		segs[i] = url.PathEscape(p)
	}
	return s.ServiceURL() + url.PathEscape(s.Container) + "/" + strings.Join(segs, "/")
}

// pathStyle reports whether the endpoint names the account in its path
// (Azurite, Outpost's --blob-listen port) rather than in its host.
func (s Settings) pathStyle() bool {
	return strings.Trim(s.Endpoint.Path, "/") != ""
}

// errNotConfigured is the answer to a device when the hub has no file
// upload storage.
func errNotConfigured(hubName, what string) *registry.Error {
	return &registry.Error{Status: http.StatusBadRequest, Code: "FileUploadNotConfigured",
		Message: fmt.Sprintf("File upload is not configured on hub %s: %s. Set the storage endpoint (az iot hub update -n %s --fcs <storage connection string> --fc <container>).", hubName, what, hubName)}
}

// ParseSettings interprets a hub's stored file upload settings.
func ParseSettings(h hub.Hub) (Settings, error) {
	return Interpret(h.Name, h.FileUpload)
}

// Interpret turns stored settings into Settings (the control plane's save
// check has them before the hub exists in the directory). Settings without a
// connection string or container are a *registry.Error
// FileUploadNotConfigured naming what is missing.
func Interpret(hubName string, f hub.FileUploadSettings) (Settings, error) {
	if strings.TrimSpace(f.ConnectionString) == "" || strings.TrimSpace(f.ContainerName) == "" {
		return Settings{}, errNotConfigured(hubName, "storageEndpoints.$default needs connectionString and containerName")
	}
	s := Settings{Container: f.ContainerName, SASTTL: f.SASTTL, UserAssignedIdentity: f.UserAssignedIdentity,
		IdentityBased: strings.EqualFold(f.AuthenticationType, IdentityBased), Notifications: f.Notifications,
		LockDuration: f.LockDuration, TTL: f.TTL, MaxDeliveryCount: f.MaxDeliveryCount}
	cs, err := ParseConnectionString(f.ConnectionString)
	if err != nil {
		return Settings{}, errNotConfigured(hubName, err.Error())
	}
	s.Account, s.AccountKey = cs.AccountName, cs.AccountKey
	// Devices always upload over https (the SDKs hard-code it) and the
	// egress speaks nothing else, so an http endpoint (Azurite's default
	// connection string) is reached over https on the same host and port.
	ep := *cs.BlobEndpoint
	ep.Scheme = "https"
	s.Endpoint = &ep
	if !s.IdentityBased && s.AccountKey == "" {
		return Settings{}, errNotConfigured(hubName, "the connection string has no AccountKey, which keyBased authentication signs with (or set authenticationType identityBased)")
	}
	if s.SASTTL <= 0 {
		s.SASTTL = time.Hour
	}
	if s.LockDuration <= 0 {
		s.LockDuration = time.Minute
	}
	if s.TTL <= 0 {
		s.TTL = time.Hour
	}
	if s.MaxDeliveryCount <= 0 {
		s.MaxDeliveryCount = 10
	}
	return s, nil
}

// ConnectionString is the part of a storage connection string file upload
// uses.
type ConnectionString struct {
	AccountName  string
	AccountKey   string
	BlobEndpoint *url.URL
}

// ParseConnectionString reads "DefaultEndpointsProtocol=https;AccountName=…;
// AccountKey=…;EndpointSuffix=…" (keys in any case and order) or the
// Azurite form with BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1.
// Without BlobEndpoint the endpoint is
// {DefaultEndpointsProtocol}://{AccountName}.blob.{EndpointSuffix}.
func ParseConnectionString(s string) (ConnectionString, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, fmt.Errorf("the storage connection string has '%s', which is not Key=Value", redactPart(part))
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	cs := ConnectionString{AccountName: kv["accountname"], AccountKey: kv["accountkey"]}
	if raw := kv["blobendpoint"]; raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return ConnectionString{}, fmt.Errorf("the storage connection string's BlobEndpoint '%s' is not an http(s) URL", raw)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		cs.BlobEndpoint = u
		if cs.AccountName == "" {
			// Accounts are named by the first label or, path-style, the first
			// path segment.
			if p := strings.Trim(u.Path, "/"); p != "" {
				cs.AccountName, _, _ = strings.Cut(p, "/")
			} else {
				cs.AccountName, _, _ = strings.Cut(u.Hostname(), ".")
			}
		}
	}
	if cs.AccountName == "" {
		return ConnectionString{}, fmt.Errorf("the storage connection string has no AccountName")
	}
	if cs.BlobEndpoint == nil {
		suffix := kv["endpointsuffix"]
		if suffix == "" {
			return ConnectionString{}, fmt.Errorf("the storage connection string has neither EndpointSuffix nor BlobEndpoint, so the account's blob endpoint is unknown")
		}
		proto := strings.ToLower(kv["defaultendpointsprotocol"])
		if proto == "" {
			proto = "https"
		}
		if proto != "https" && proto != "http" {
			return ConnectionString{}, fmt.Errorf("the storage connection string's DefaultEndpointsProtocol '%s' is neither https nor http", proto)
		}
		cs.BlobEndpoint = &url.URL{Scheme: proto, Host: strings.ToLower(cs.AccountName) + ".blob." + strings.Trim(suffix, ".")}
	}
	return cs, nil
}

// redactPart keeps a malformed connection string part out of messages when
// it may be a key.
func redactPart(p string) string {
	if len(p) > 12 {
		return p[:4] + "…"
	}
	return p
}
