package blob

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

// metadataFrom reads x-ms-meta-* headers. Go canonicalises header names,
// so names come back lower-case (storage metadata names are
// case-insensitive).
func metadataFrom(h http.Header) map[string]string {
	md := map[string]string{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-ms-meta-"); ok && name != "" {
			md[name] = strings.Join(v, ",")
		}
	}
	return md
}

func setMetadataHeaders(h http.Header, md map[string]string) {
	for k, v := range md {
		h["x-ms-meta-"+k] = []string{v}
	}
}

// etagMatches reports whether a conditional header's list of ETags names
// etag. Quotes are not significant: List Blobs shows ETags bare, as Azure
// does, and clients send back what they were shown.
func etagMatches(header, etag string) bool {
	want := unquoteETag(etag)
	for _, t := range strings.Split(header, ",") {
		if unquoteETag(strings.TrimPrefix(strings.TrimSpace(t), "W/")) == want {
			return true
		}
	}
	return false
}

// unquoteETag is an ETag as list results show it (0x8D…, no quotes).
func unquoteETag(s string) string { return strings.Trim(strings.TrimSpace(s), "\"") }

func quoteETag(s string) string {
	if strings.HasPrefix(s, "\"") {
		return s
	}
	return "\"" + s + "\""
}

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func writeXML(w http.ResponseWriter, status int, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xmlDecl)
	_, err = w.Write(b)
	return err
}

// metadataXML renders <Metadata><name>value</name>…</Metadata>.
type metadataXML map[string]string

func (m metadataXML) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := e.EncodeElement(m[k], xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

func (h *Handler) container(ctx context.Context, rq *request) (storage.Container, error) {
	c, err := h.cfg.Containers.Get(ctx, rq.account.ResourceID, rq.container)
	if err != nil {
		return storage.Container{}, errNotFoundAs(err, errContainerNotFound())
	}
	return c, nil
}

func publicAccessHeader(r *http.Request) (string, error) {
	v := r.Header.Get("x-ms-blob-public-access")
	switch strings.ToLower(v) {
	case "":
		return "None", nil
	case "blob":
		return "Blob", nil
	case "container":
		return "Container", nil
	}
	return "", errInvalidHeader("x-ms-blob-public-access", v, "use blob or container, or leave it out for private")
}

func (h *Handler) createContainer(ctx context.Context, rq *request, _ *access.Caller) error {
	pa, err := publicAccessHeader(rq.r)
	if err != nil {
		return err
	}
	if pa != "None" && !rq.account.AllowBlobPublicAccess {
		return errorf(http.StatusConflict, "PublicAccessNotPermitted", "Public access is not permitted on this storage account: set allowBlobPublicAccess on '%s' first.", rq.account.Name)
	}
	c, err := h.cfg.Containers.Create(ctx, rq.account.ResourceID, rq.container, pa, metadataFrom(rq.r.Header))
	if errors.Is(err, store.ErrAlreadyExists) {
		return errorf(http.StatusConflict, "ContainerAlreadyExists", "The specified container already exists.")
	}
	if err != nil {
		return err
	}
	// A container made again after a delete starts empty, even if an
	// earlier removal was interrupted.
	if err := h.cfg.Blobs.RemoveContainer(ctx, rq.account.Name, rq.container); err != nil {
		return err
	}
	hd := rq.w.Header()
	hd.Set("ETag", quoteETag(c.ETag))
	hd.Set("Last-Modified", httpTime(c.LastModified))
	rq.w.WriteHeader(http.StatusCreated)
	return nil
}

func containerHeaders(hd http.Header, c storage.Container) {
	hd.Set("ETag", quoteETag(c.ETag))
	hd.Set("Last-Modified", httpTime(c.LastModified))
}

func (h *Handler) containerProperties(ctx context.Context, rq *request, _ *access.Caller) error {
	c, err := h.container(ctx, rq)
	if err != nil {
		return err
	}
	hd := rq.w.Header()
	containerHeaders(hd, c)
	setMetadataHeaders(hd, c.Metadata)
	hd.Set("x-ms-lease-status", "unlocked")
	hd.Set("x-ms-lease-state", "available")
	hd.Set("x-ms-has-immutability-policy", "false")
	hd.Set("x-ms-has-legal-hold", "false")
	hd.Set("x-ms-default-encryption-scope", "$account-encryption-key")
	hd.Set("x-ms-deny-encryption-scope-override", "false")
	if c.PublicAccess != "None" {
		hd.Set("x-ms-blob-public-access", strings.ToLower(c.PublicAccess))
	}
	hd.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) setContainerMetadata(ctx context.Context, rq *request, _ *access.Caller) error {
	c, err := h.cfg.Containers.SetMetadata(ctx, rq.account.ResourceID, rq.container, metadataFrom(rq.r.Header))
	if err != nil {
		return errNotFoundAs(err, errContainerNotFound())
	}
	containerHeaders(rq.w.Header(), c)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// containerACL answers Get Container ACL: the public access level and no
// stored access policies (Outpost keeps none).
func (h *Handler) containerACL(ctx context.Context, rq *request, _ *access.Caller) error {
	c, err := h.container(ctx, rq)
	if err != nil {
		return err
	}
	containerHeaders(rq.w.Header(), c)
	if c.PublicAccess != "None" {
		rq.w.Header().Set("x-ms-blob-public-access", strings.ToLower(c.PublicAccess))
	}
	return writeXML(rq.w, http.StatusOK, struct {
		XMLName xml.Name `xml:"SignedIdentifiers"`
	}{})
}

// setContainerACL changes the public access level. Stored access policies
// in the body are refused rather than silently dropped.
func (h *Handler) setContainerACL(ctx context.Context, rq *request, _ *access.Caller) error {
	pa, err := publicAccessHeader(rq.r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(rq.r.Body, 64<<10))
	if strings.Contains(string(body), "<SignedIdentifier>") {
		return errorf(http.StatusBadRequest, "InvalidXmlDocument", "Stored access policies are not supported by Outpost; send an empty <SignedIdentifiers/> and sign SAS tokens with explicit permissions.")
	}
	if pa != "None" && !rq.account.AllowBlobPublicAccess {
		return errorf(http.StatusConflict, "PublicAccessNotPermitted", "Public access is not permitted on this storage account: set allowBlobPublicAccess on '%s' first.", rq.account.Name)
	}
	// Public access is a property of the ARM record; it is changed with the
	// same helper through a metadata-preserving rewrite.
	c, err := h.container(ctx, rq)
	if err != nil {
		return err
	}
	if c.PublicAccess != pa {
		return errorf(http.StatusBadRequest, "InvalidHeaderValue",
			"Changing a container's public access is done through ARM in Outpost: PUT .../blobServices/default/containers/%s with properties.publicAccess '%s'.", rq.container, pa)
	}
	containerHeaders(rq.w.Header(), c)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) deleteContainer(ctx context.Context, rq *request, _ *access.Caller) error {
	if err := h.cfg.Containers.Delete(ctx, rq.account.ResourceID, rq.container); err != nil {
		return errNotFoundAs(err, errContainerNotFound())
	}
	if err := h.cfg.Blobs.RemoveContainer(ctx, rq.account.Name, rq.container); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusAccepted)
	return nil
}

type containerXML struct {
	Name       string `xml:"Name"`
	Properties struct {
		LastModified string `xml:"Last-Modified"`
		Etag         string `xml:"Etag"`
		LeaseStatus  string `xml:"LeaseStatus"`
		LeaseState   string `xml:"LeaseState"`
		PublicAccess string `xml:"PublicAccess,omitempty"`
		Immutability bool   `xml:"HasImmutabilityPolicy"`
		LegalHold    bool   `xml:"HasLegalHold"`
	} `xml:"Properties"`
	Metadata metadataXML `xml:"Metadata,omitempty"`
}

func (h *Handler) listContainers(ctx context.Context, rq *request, _ *access.Caller) error {
	q := rq.r.URL.Query()
	prefix, marker := q.Get("prefix"), q.Get("marker")
	max, err := maxResults(q.Get("maxresults"))
	if err != nil {
		return err
	}
	withMeta := strings.Contains(strings.ToLower(q.Get("include")), "metadata")
	all, err := h.cfg.Containers.List(ctx, rq.account.ResourceID)
	if err != nil {
		return err
	}
	out := struct {
		XMLName         xml.Name       `xml:"EnumerationResults"`
		ServiceEndpoint string         `xml:"ServiceEndpoint,attr"`
		Prefix          string         `xml:"Prefix,omitempty"`
		Marker          string         `xml:"Marker,omitempty"`
		MaxResults      int            `xml:"MaxResults,omitempty"`
		Containers      []containerXML `xml:"Containers>Container"`
		NextMarker      string         `xml:"NextMarker"`
	}{ServiceEndpoint: endpoint(rq), Prefix: prefix, Marker: marker}
	if q.Get("maxresults") != "" {
		out.MaxResults = max
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for _, c := range all {
		if !strings.HasPrefix(c.Name, prefix) || c.Name < marker {
			continue
		}
		if len(out.Containers) == max {
			out.NextMarker = c.Name
			break
		}
		var x containerXML
		x.Name = c.Name
		x.Properties.LastModified = httpTime(c.LastModified)
		x.Properties.Etag = unquoteETag(c.ETag)
		x.Properties.LeaseStatus, x.Properties.LeaseState = "unlocked", "available"
		if c.PublicAccess != "None" {
			x.Properties.PublicAccess = strings.ToLower(c.PublicAccess)
		}
		if withMeta {
			x.Metadata = c.Metadata
		}
		out.Containers = append(out.Containers, x)
	}
	return writeXML(rq.w, http.StatusOK, out)
}

func (h *Handler) accountInfo(_ context.Context, rq *request, _ *access.Caller) error {
	hd := rq.w.Header()
	hd.Set("x-ms-sku-name", "Standard_LRS")
	hd.Set("x-ms-account-kind", "StorageV2")
	hd.Set("x-ms-is-hns-enabled", "false")
	hd.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) serviceProperties(_ context.Context, rq *request, _ *access.Caller) error {
	type policy struct {
		Enabled bool `xml:"Enabled"`
	}
	return writeXML(rq.w, http.StatusOK, struct {
		XMLName         xml.Name `xml:"StorageServiceProperties"`
		DeleteRetention policy   `xml:"DeleteRetentionPolicy"`
		StaticWebsite   policy   `xml:"StaticWebsite"`
		Cors            string   `xml:"Cors"`
	}{})
}

// maxDelegationKeyLife is Azure's limit on a user delegation key.
const maxDelegationKeyLife = 7 * 24 * time.Hour

// userDelegationKey answers Get User Delegation Key. The key's value is
// derived from its own fields and the account's delegation secret, so any
// node can verify a SAS signed with it without remembering it.
func (h *Handler) userDelegationKey(_ context.Context, rq *request, caller *access.Caller) error {
	var in struct {
		Start  string `xml:"Start"`
		Expiry string `xml:"Expiry"`
	}
	body, err := io.ReadAll(io.LimitReader(rq.r.Body, 64<<10))
	if err != nil {
		return err
	}
	if err := xml.Unmarshal(body, &in); err != nil {
		return errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid: send <KeyInfo><Start>…</Start><Expiry>…</Expiry></KeyInfo> (%v).", err)
	}
	start := rq.now
	if in.Start != "" {
		t, ok := parseSASTime(in.Start)
		if !ok {
			return errorf(http.StatusBadRequest, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct format: Start '%s'; use an ISO 8601 UTC time.", in.Start)
		}
		start = t
	}
	expiry, ok := parseSASTime(in.Expiry)
	if !ok {
		return errorf(http.StatusBadRequest, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct format: Expiry '%s'; use an ISO 8601 UTC time.", in.Expiry)
	}
	if !expiry.After(start) || expiry.Sub(rq.now) > maxDelegationKeyLife {
		return errorf(http.StatusBadRequest, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct format: Expiry must be after Start and at most 7 days from now.")
	}
	const layout = "2006-01-02T15:04:05Z"
	st, se := start.UTC().Format(layout), expiry.UTC().Format(layout)
	version := rq.r.Header.Get("x-ms-version")
	if version == "" {
		version = Version
	}
	oid, tid := caller.PrincipalID, caller.TenantID
	if tid == "" {
		tid = h.cfg.TenantID
	}
	value := rq.account.DelegationKey(oid, tid, st, se, "b", version)
	return writeXML(rq.w, http.StatusOK, struct {
		XMLName       xml.Name `xml:"UserDelegationKey"`
		SignedOid     string   `xml:"SignedOid"`
		SignedTid     string   `xml:"SignedTid"`
		SignedStart   string   `xml:"SignedStart"`
		SignedExpiry  string   `xml:"SignedExpiry"`
		SignedService string   `xml:"SignedService"`
		SignedVersion string   `xml:"SignedVersion"`
		Value         string   `xml:"Value"`
	}{SignedOid: oid, SignedTid: tid, SignedStart: st, SignedExpiry: se, SignedService: "b", SignedVersion: version,
		Value: base64.StdEncoding.EncodeToString(value)})
}
