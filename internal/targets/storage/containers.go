package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// Container is one blob container, read from its ARM record.
type Container struct {
	Name string
	// ID is the ARM id (the RBAC scope of the container's data).
	ID           string
	PublicAccess string // None, Blob or Container
	Metadata     map[string]string
	LastModified time.Time
	// ETag is the record's store ETag (changes on every write).
	ETag string
}

// Containers reads and writes container records: the one place both the
// ARM type and the data plane go through, so they can never disagree on
// what a container looks like.
type Containers struct {
	resources store.Resources
	now       func() time.Time
}

// NewContainers builds the helper; now defaults to time.Now.
func NewContainers(resources store.Resources, now func() time.Time) *Containers {
	if now == nil {
		now = time.Now
	}
	return &Containers{resources: resources, now: now}
}

var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

// ValidContainerName reports whether name follows Azure's container rules:
// 3-63 lower-case letters, digits and single hyphens, starting and ending
// with a letter or digit. ("$root" and "$logs" are not served.)
func ValidContainerName(name string) bool { return containerName.MatchString(name) }

// ContainerProperties is a container's properties member.
type ContainerProperties struct {
	PublicAccess                string            `json:"publicAccess"`
	Metadata                    map[string]string `json:"metadata"`
	LastModifiedTime            string            `json:"lastModifiedTime"`
	LeaseStatus                 string            `json:"leaseStatus"`
	LeaseState                  string            `json:"leaseState"`
	HasImmutabilityPolicy       bool              `json:"hasImmutabilityPolicy"`
	HasLegalHold                bool              `json:"hasLegalHold"`
	Deleted                     bool              `json:"deleted"`
	RemainingRetentionDays      int               `json:"remainingRetentionDays"`
	DefaultEncryptionScope      string            `json:"defaultEncryptionScope"`
	DenyEncryptionScopeOverride bool              `json:"denyEncryptionScopeOverride"`
}

// NormalizePublicAccess accepts any case of None/Blob/Container ("" is
// None); ok is false for anything else.
func NormalizePublicAccess(s string) (string, bool) {
	for _, v := range []string{"None", "Blob", "Container"} {
		if strings.EqualFold(v, s) {
			return v, true
		}
	}
	return "None", s == ""
}

func containerProperties(publicAccess string, metadata map[string]string, now time.Time) ContainerProperties {
	if metadata == nil {
		metadata = map[string]string{}
	}
	return ContainerProperties{
		PublicAccess: publicAccess, Metadata: metadata,
		LastModifiedTime: now.UTC().Format(time.RFC3339Nano),
		LeaseStatus:      "Unlocked", LeaseState: "Available",
		DefaultEncryptionScope: "$account-encryption-key",
	}
}

// containerRecord builds the store record of a container.
func containerRecord(id arm.ResourceID, props ContainerProperties) store.Resource {
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", id.Name())
	doc.Set("type", ContainerArmType)
	doc.Set("properties", props)
	return store.Resource{
		ID: id.String(), Type: ContainerArmType, Subscription: id.Subscription, ResourceGroup: id.ResourceGroup,
		ParentID: id.ParentID(), Name: id.Name(), Body: doc.Bytes(),
	}
}

func containerOf(res store.Resource) (Container, error) {
	var doc struct {
		Properties ContainerProperties `json:"properties"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return Container{}, fmt.Errorf("storage: decode container %s: %w", res.ID, err)
	}
	c := Container{Name: res.Name, ID: res.ID, PublicAccess: doc.Properties.PublicAccess, Metadata: doc.Properties.Metadata, ETag: res.ETag}
	if c.PublicAccess == "" {
		c.PublicAccess = "None"
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	c.LastModified, _ = time.Parse(time.RFC3339Nano, doc.Properties.LastModifiedTime)
	if c.LastModified.IsZero() {
		c.LastModified = res.UpdatedAt
	}
	return c, nil
}

func parseContainerID(accountID, name string) (arm.ResourceID, error) {
	id, err := arm.ParseResourceID(accountID + "/blobServices/default/containers/" + name)
	if err != nil {
		return arm.ResourceID{}, fmt.Errorf("storage: container id: %w", err)
	}
	return id, nil
}

// Create stores a new container; it returns store.ErrAlreadyExists (wrapped)
// when the name is taken.
func (c *Containers) Create(ctx context.Context, accountID, name, publicAccess string, metadata map[string]string) (Container, error) {
	id, err := parseContainerID(accountID, name)
	if err != nil {
		return Container{}, err
	}
	rec := containerRecord(id, containerProperties(publicAccess, metadata, c.now()))
	res, _, err := c.resources.Put(ctx, id.String(), func(cur *store.Resource) (store.Resource, error) {
		if cur != nil {
			return store.Resource{}, store.ErrAlreadyExists
		}
		return rec, nil
	})
	if err != nil {
		return Container{}, fmt.Errorf("storage: create container %s: %w", name, err)
	}
	return containerOf(res)
}

// Get returns a container or store.ErrNotFound (wrapped).
func (c *Containers) Get(ctx context.Context, accountID, name string) (Container, error) {
	id, err := parseContainerID(accountID, name)
	if err != nil {
		return Container{}, err
	}
	res, err := c.resources.Get(ctx, id.String())
	if err != nil {
		return Container{}, fmt.Errorf("storage: get container %s: %w", name, err)
	}
	return containerOf(res)
}

// SetMetadata replaces a container's metadata.
func (c *Containers) SetMetadata(ctx context.Context, accountID, name string, metadata map[string]string) (Container, error) {
	id, err := parseContainerID(accountID, name)
	if err != nil {
		return Container{}, err
	}
	now := c.now()
	res, _, err := c.resources.Put(ctx, id.String(), func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, store.ErrNotFound
		}
		was, err := containerOf(*cur)
		if err != nil {
			return store.Resource{}, err
		}
		var doc struct {
			Properties ContainerProperties `json:"properties"`
		}
		_ = json.Unmarshal(cur.Body, &doc)
		props := containerProperties(was.PublicAccess, metadata, now)
		props.LeaseState, props.LeaseStatus = doc.Properties.LeaseState, doc.Properties.LeaseStatus
		next := containerRecord(id, props)
		next.ID, next.Name = cur.ID, cur.Name
		return next, nil
	})
	if err != nil {
		return Container{}, fmt.Errorf("storage: set metadata of container %s: %w", name, err)
	}
	return containerOf(res)
}

// Delete removes a container record; store.ErrNotFound (wrapped) when
// absent. The caller removes the blobs.
func (c *Containers) Delete(ctx context.Context, accountID, name string) error {
	id, err := parseContainerID(accountID, name)
	if err != nil {
		return err
	}
	if err := c.resources.Delete(ctx, id.String(), ""); err != nil {
		return fmt.Errorf("storage: delete container %s: %w", name, err)
	}
	return nil
}

// List returns the account's containers ordered by name.
func (c *Containers) List(ctx context.Context, accountID string) ([]Container, error) {
	var out []Container
	after := ""
	const page = 1000
	for {
		batch, err := c.resources.List(ctx, store.ResourceFilter{
			ParentID: accountID + "/blobServices/default", Type: ContainerArmType, After: after, Limit: page,
		})
		if err != nil {
			return nil, fmt.Errorf("storage: list containers: %w", err)
		}
		for _, r := range batch {
			ct, err := containerOf(r)
			if err != nil {
				return nil, err
			}
			out = append(out, ct)
		}
		if len(batch) < page {
			return out, nil
		}
		after = batch[len(batch)-1].ID
	}
}

// ContainerType is the ARM face of containers
// (Microsoft.Storage/storageAccounts/blobServices/containers).
type ContainerType struct {
	resources store.Resources
	blobs     BlobStore
	now       func() time.Time
}

var _ arm.ResourceType = (*ContainerType)(nil)

// NewContainerType builds the type; blobs may be nil (no data removed).
func NewContainerType(resources store.Resources, blobs BlobStore, now func() time.Time) *ContainerType {
	if now == nil {
		now = time.Now
	}
	return &ContainerType{resources: resources, blobs: blobs, now: now}
}

// Info implements arm.ResourceType.
func (t *ContainerType) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "storageAccounts/blobServices/containers", APIVersions: APIVersions()}
}

// Prepare implements arm.ResourceType.
func (t *ContainerType) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if !ValidContainerName(name) {
		return nil, arm.Errorf(http.StatusBadRequest, "ContainerOperationFailure",
			"The specified resource name contains invalid characters: '%s'. Container names are 3-63 lower-case letters, digits and single hyphens, starting with a letter or digit.", name)
	}
	var in struct {
		PublicAccess string            `json:"publicAccess"`
		Metadata     map[string]string `json:"metadata"`
	}
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "properties is malformed: %v", err)
	}
	pa, ok := NormalizePublicAccess(in.PublicAccess)
	if !ok {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidValuesForRequestParameters",
			"Values for request parameters are invalid: properties.publicAccess '%s'. Use None, Blob or Container.", in.PublicAccess)
	}
	if pa != "None" {
		acct, err := t.resources.Get(ctx, accountIDOf(req.ID))
		if err != nil {
			return nil, fmt.Errorf("storage: get account: %w", err)
		}
		a, err := decodeAccount(acct)
		if err == nil && !a.AllowBlobPublicAccess {
			return nil, arm.Errorf(http.StatusConflict, "PublicAccessNotPermitted",
				"Public access is not permitted on this storage account '%s'. Set properties.allowBlobPublicAccess to true on the account first.", a.Name)
		}
	}
	props := containerProperties(pa, in.Metadata, t.now())
	doc := arm.Document{}
	doc.Set("properties", props)
	return doc, nil
}

// accountIDOf is the id of the account a child id belongs to.
func accountIDOf(id arm.ResourceID) string {
	a := id
	a.Types, a.Names = id.Types[:1], id.Names[:1]
	return a.String()
}

// Provision implements arm.ResourceType.
func (t *ContainerType) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType: the container's blobs go.
func (t *ContainerType) Deprovision(ctx context.Context, res store.Resource) error {
	if t.blobs == nil {
		return nil
	}
	id, err := arm.ParseResourceID(res.ID)
	if err != nil || len(id.Names) < 3 {
		return fmt.Errorf("storage: deprovision container %s: bad id", res.ID)
	}
	if err := t.blobs.RemoveContainer(ctx, strings.ToLower(id.Names[0]), res.Name); err != nil {
		return fmt.Errorf("storage: remove blobs of container %s: %w", res.Name, err)
	}
	return nil
}

// BlobServices is the storageAccounts/blobServices type: "default" always
// exists; a PUT stores its properties (deleteRetentionPolicy, cors, …).
type BlobServices struct{ resources store.Resources }

var (
	_ arm.ResourceType   = (*BlobServices)(nil)
	_ arm.ResourceReader = (*BlobServices)(nil)
)

// NewBlobServices builds the type.
func NewBlobServices(resources store.Resources) *BlobServices {
	return &BlobServices{resources: resources}
}

// Info implements arm.ResourceType.
func (b *BlobServices) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "storageAccounts/blobServices", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

func errNotDefault(name string) *arm.Error {
	return arm.Errorf(http.StatusBadRequest, "InvalidResourceName",
		"The blob service of an account is always named 'default', not '%s'.", name)
}

func defaultBlobServiceProperties() map[string]any {
	return map[string]any{
		"cors":                  map[string]any{"corsRules": []any{}},
		"deleteRetentionPolicy": map[string]any{"enabled": false, "allowPermanentDelete": false},
	}
}

// Prepare implements arm.ResourceType: the properties are kept as sent over
// the defaults (Outpost keeps no deleted blobs, whatever the policy says).
func (b *BlobServices) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if req.ID.Name() != "default" {
		return nil, errNotDefault(req.ID.Name())
	}
	props := defaultBlobServiceProperties()
	in := map[string]json.RawMessage{}
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "properties is malformed: %v", err)
	}
	for k, v := range in {
		props[k] = v
	}
	doc := arm.Document{}
	doc.Set("properties", props)
	return doc, nil
}

// Provision implements arm.ResourceType.
func (b *BlobServices) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (b *BlobServices) Deprovision(context.Context, store.Resource) error { return nil }

// Get implements arm.ResourceReader: the stored service, or the default one.
func (b *BlobServices) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	if id.Name() != "default" {
		return store.Resource{}, store.ErrNotFound
	}
	res, err := b.resources.Get(ctx, id.String())
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	if _, err := b.resources.Get(ctx, id.ParentID()); err != nil {
		return store.Resource{}, err
	}
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", "default")
	doc.Set("type", BlobServiceType)
	doc.Set("properties", defaultBlobServiceProperties())
	return store.Resource{ID: id.String(), Type: BlobServiceType, Subscription: id.Subscription, ResourceGroup: id.ResourceGroup,
		ParentID: id.ParentID(), Name: "default", Body: doc.Bytes()}, nil
}
