package storage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// Namespace and types served here.
const (
	Namespace        = "Microsoft.Storage"
	AccountType      = "Microsoft.Storage/storageAccounts"
	BlobServiceType  = "Microsoft.Storage/storageAccounts/blobServices"
	ContainerArmType = "Microsoft.Storage/storageAccounts/blobServices/containers"
)

// Identities applies the identity block; *msi.Manager implements it.
type Identities interface {
	Prepare(ctx context.Context, req arm.PutRequest) (msi.Block, error)
	Provision(ctx context.Context, resourceID string, b msi.Block) (msi.Block, error)
	Deprovision(ctx context.Context, resourceID string) error
}

// BlobStore removes blob data when its container or account leaves the
// store; the blob package's disk store implements it. Both calls must be
// idempotent (a delete is retried after a crash).
type BlobStore interface {
	RemoveContainer(ctx context.Context, account, container string) error
	RemoveAccount(ctx context.Context, account string) error
}

// ResourceLister lists stored resources; store.Resources implements it.
type ResourceLister interface {
	List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error)
}

// Invalidator is told when an account changes (Directory implements it).
type Invalidator interface{ Invalidate() }

// Config holds the account type's dependencies.
type Config struct {
	// DNSSuffix makes endpoints: https://{account}.blob.{DNSSuffix}/.
	DNSSuffix string
	// Port, when not empty or "443", is appended to endpoint hosts (the
	// installation's HTTPS port when it could not bind 443).
	Port       string
	Identities Identities
	Resources  store.Resources
	// Blobs removes blob data on delete (nothing is removed when nil).
	Blobs BlobStore
	// Directory is invalidated on every change (may be nil).
	Directory Invalidator
	// Locations are the accepted locations (arm.DefaultLocations when nil).
	Locations []arm.Location
	// Now defaults to time.Now; Random (key material) to crypto/rand.
	Now    func() time.Time
	Random io.Reader
}

// Accounts is the Microsoft.Storage/storageAccounts resource type.
type Accounts struct{ cfg Config }

var (
	_ arm.ResourceType = (*Accounts)(nil)
	_ arm.ActionType   = (*Accounts)(nil)
	_ arm.Renderer     = (*Accounts)(nil)
)

// NewAccounts builds the resource type.
func NewAccounts(cfg Config) *Accounts {
	if cfg.Locations == nil {
		cfg.Locations = arm.DefaultLocations()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	return &Accounts{cfg: cfg}
}

// Info implements arm.ResourceType.
func (a *Accounts) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: Namespace, Type: "storageAccounts", APIVersions: APIVersions(),
		Actions:      []string{"listKeys", "regenerateKey"},
		Capabilities: "SupportsTags, SupportsLocation",
		// The spec lists 200 and 202 for Create; armstorage fails on 201.
		CreateStatus: http.StatusOK,
	}
}

var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

func errAccountNameInvalid(name string) *arm.Error {
	return arm.Errorf(http.StatusBadRequest, "AccountNameInvalid",
		"%s is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.", name)
}

func errAccountNameTaken(name string) *arm.Error {
	return arm.Errorf(http.StatusConflict, "StorageAccountAlreadyTaken",
		"The storage account named %s is already taken.", name)
}

// stored is the part of an account document only Outpost reads: the keys
// and the delegation secret. Render removes it.
type stored struct {
	Keys []AccountKey `json:"keys"`
	// DelegationSecret derives user delegation keys (see Account).
	DelegationSecret string `json:"delegationSecret"`
}

// storedMember is the document member holding stored.
const storedMember = "outpostSecrets"

// AccountKey is one entry of listKeys.
type AccountKey struct {
	KeyName      string `json:"keyName"`
	Value        string `json:"value"`
	Permissions  string `json:"permissions"`
	CreationTime string `json:"creationTime"`
}

// Prepare implements arm.ResourceType.
func (a *Accounts) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if !accountName.MatchString(name) {
		return nil, errAccountNameInvalid(name)
	}
	other, found, err := findAccount(ctx, a.cfg.Resources, name)
	if err != nil {
		return nil, err
	}
	if found && store.Key(other.ID) != store.Key(req.ID.String()) {
		return nil, errAccountNameTaken(name)
	}
	var current arm.Document
	if req.Current != nil {
		if current, err = arm.ParseDocument(req.Current.Body); err != nil {
			return nil, fmt.Errorf("storage: decode stored account %s: %w", req.Current.ID, err)
		}
	}
	location, err := a.location(req, current)
	if err != nil {
		return nil, err
	}
	sku, err := prepareSKU(req.Body)
	if err != nil {
		return nil, err
	}
	kind, err := prepareKind(req.Body)
	if err != nil {
		return nil, err
	}
	block, err := a.cfg.Identities.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	keepPrincipalIDs(&block, current)
	var tags map[string]string
	if err := req.Body.Decode("tags", &tags); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "tags must be an object of string values: %v", err)
	}
	if tags == nil {
		tags = map[string]string{}
	}
	now := a.cfg.Now().UTC()
	secrets, err := a.secrets(current, now)
	if err != nil {
		return nil, err
	}
	props, err := a.properties(req.Body, current, name, location, kind, secrets, now)
	if err != nil {
		return nil, err
	}
	doc := arm.Document{}
	doc.Set("location", location)
	doc.Set("tags", tags)
	doc.Set("sku", sku)
	doc.Set("kind", kind)
	if block.Type != msi.TypeNone {
		doc.Set("identity", block)
	}
	doc.Set("properties", props)
	doc.Set(storedMember, secrets)
	return doc, nil
}

// secrets keeps the stored keys and delegation secret, generating them on
// create: a PUT never changes keys (regenerateKey does).
func (a *Accounts) secrets(current arm.Document, now time.Time) (stored, error) {
	var s stored
	if current != nil {
		_ = current.Decode(storedMember, &s)
	}
	if len(s.Keys) == 2 && s.DelegationSecret != "" {
		return s, nil
	}
	k1, err := a.newKey()
	if err != nil {
		return stored{}, err
	}
	k2, err := a.newKey()
	if err != nil {
		return stored{}, err
	}
	ds, err := a.newKey()
	if err != nil {
		return stored{}, err
	}
	ts := now.Format(time.RFC3339Nano)
	return stored{
		Keys: []AccountKey{
			{KeyName: "key1", Value: k1, Permissions: "FULL", CreationTime: ts},
			{KeyName: "key2", Value: k2, Permissions: "FULL", CreationTime: ts},
		},
		DelegationSecret: ds,
	}, nil
}

// newKey returns 64 random bytes in base64, the shape of Azure's keys.
func (a *Accounts) newKey() (string, error) {
	b := make([]byte, 64)
	if _, err := io.ReadFull(a.cfg.Random, b); err != nil {
		return "", fmt.Errorf("storage: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (a *Accounts) location(req arm.PutRequest, current arm.Document) (string, error) {
	stored := ""
	if current != nil {
		stored = current.String("location")
	}
	return arm.ResolveLocation(a.cfg.Locations, AccountType, req.ID, req.Body.String("location"), stored)
}

// SKU is the account's sku.
type SKU struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
}

var skuNames = []string{"Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS", "Standard_GZRS", "Standard_RAGZRS"}

func prepareSKU(body arm.Document) (SKU, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := body.Decode("sku", &in); err != nil {
		return SKU{}, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "sku must be {\"name\": \"Standard_LRS\"}: %v", err)
	}
	if in.Name == "" {
		in.Name = "Standard_LRS"
	}
	for _, n := range skuNames {
		if strings.EqualFold(n, in.Name) {
			tier := "Standard"
			if strings.HasPrefix(n, "Premium") {
				tier = "Premium"
			}
			return SKU{Name: n, Tier: tier}, nil
		}
	}
	return SKU{}, arm.Errorf(http.StatusBadRequest, "InvalidValuesForRequestParameters",
		"Values for request parameters are invalid: sku.name '%s'. Use one of %s.", in.Name, strings.Join(skuNames, ", "))
}

var kinds = []string{"StorageV2", "Storage", "BlobStorage", "BlockBlobStorage", "FileStorage"}

func prepareKind(body arm.Document) (string, error) {
	k := body.String("kind")
	if k == "" {
		return "StorageV2", nil
	}
	for _, c := range kinds {
		if strings.EqualFold(c, k) {
			return c, nil
		}
	}
	return "", arm.Errorf(http.StatusBadRequest, "InvalidValuesForRequestParameters",
		"Values for request parameters are invalid: kind '%s'. Use one of %s.", k, strings.Join(kinds, ", "))
}

// keepPrincipalIDs shows the ids the identities already have while the
// update is provisioned (Provision sets them again).
func keepPrincipalIDs(b *msi.Block, current arm.Document) {
	if current == nil {
		return
	}
	var was msi.Block
	_ = current.Decode("identity", &was)
	if b.System() && was.System() {
		b.PrincipalID, b.TenantID = was.PrincipalID, was.TenantID
	}
	for id, ref := range b.UserAssignedIdentities {
		for wid, wref := range was.UserAssignedIdentities {
			if strings.EqualFold(id, wid) && wref != nil {
				*ref = *wref
			}
		}
	}
}

// Provision implements arm.ResourceType: the system-assigned identity
// follows the block.
func (a *Accounts) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	defer a.invalidate()
	var block msi.Block
	if err := doc.Decode("identity", &block); err != nil {
		return nil, fmt.Errorf("storage: provision %s: %w", id, err)
	}
	if block.Type == "" {
		block.Type = msi.TypeNone
	}
	block, err := a.cfg.Identities.Provision(ctx, id.String(), block)
	if err != nil {
		return nil, fmt.Errorf("storage: provision %s: %w", id, err)
	}
	if block.Type != msi.TypeNone {
		doc.Set("identity", block)
	} else {
		delete(doc, "identity")
	}
	return doc, nil
}

// Deprovision implements arm.ResourceType: the identity and every blob of
// the account go.
func (a *Accounts) Deprovision(ctx context.Context, res store.Resource) error {
	defer a.invalidate()
	if err := a.cfg.Identities.Deprovision(ctx, res.ID); err != nil {
		return fmt.Errorf("storage: deprovision %s: %w", res.ID, err)
	}
	if a.cfg.Blobs != nil {
		if err := a.cfg.Blobs.RemoveAccount(ctx, strings.ToLower(res.Name)); err != nil {
			return fmt.Errorf("storage: remove blobs of %s: %w", res.Name, err)
		}
	}
	return nil
}

func (a *Accounts) invalidate() {
	if a.cfg.Directory != nil {
		a.cfg.Directory.Invalidate()
	}
}

// Render implements arm.Renderer: keys never leave through GET or PUT.
func (a *Accounts) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, storedMember)
	return doc.Bytes()
}

// Action implements arm.ActionType: listKeys and regenerateKey.
func (a *Accounts) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	switch strings.ToLower(action) {
	case "listkeys":
		s, err := secretsOf(res)
		if err != nil {
			return nil, err
		}
		return map[string]any{"keys": s.Keys}, nil
	case "regeneratekey":
		return a.regenerate(ctx, res, body)
	}
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"The storage account '%s' has no operation '%s'.", res.Name, action)
}

func (a *Accounts) regenerate(ctx context.Context, res store.Resource, body json.RawMessage) (any, error) {
	var in struct {
		KeyName string `json:"keyName"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.KeyName == "" {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent",
			"The request body must be {\"keyName\": \"key1\"} (or key2).")
	}
	value, err := a.newKey()
	if err != nil {
		return nil, err
	}
	ts := a.cfg.Now().UTC().Format(time.RFC3339Nano)
	var out stored
	_, _, err = a.cfg.Resources.Put(ctx, res.ID, func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The storage account '%s' was not found.", res.Name)
		}
		doc, err := arm.ParseDocument(cur.Body)
		if err != nil {
			return store.Resource{}, fmt.Errorf("storage: decode %s: %w", cur.ID, err)
		}
		var s stored
		_ = doc.Decode(storedMember, &s)
		found := false
		for i := range s.Keys {
			if strings.EqualFold(s.Keys[i].KeyName, in.KeyName) {
				s.Keys[i].Value, s.Keys[i].CreationTime, found = value, ts, true
			}
		}
		if !found {
			return store.Resource{}, arm.Errorf(http.StatusBadRequest, "InvalidValuesForRequestParameters",
				"Values for request parameters are invalid: keyName '%s'. Use key1 or key2.", in.KeyName)
		}
		doc.Set(storedMember, s)
		var props map[string]json.RawMessage
		if doc.Decode("properties", &props) == nil && props != nil {
			var kct map[string]string
			_ = json.Unmarshal(props["keyCreationTime"], &kct)
			if kct == nil {
				kct = map[string]string{}
			}
			kct[strings.ToLower(in.KeyName)] = ts
			props["keyCreationTime"], _ = json.Marshal(kct)
			doc.Set("properties", props)
		}
		out = s
		next := *cur
		next.Body = doc.Bytes()
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	a.invalidate()
	return map[string]any{"keys": out.Keys}, nil
}

func secretsOf(res store.Resource) (stored, error) {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return stored{}, fmt.Errorf("storage: decode %s: %w", res.ID, err)
	}
	var s stored
	if err := doc.Decode(storedMember, &s); err != nil {
		return stored{}, fmt.Errorf("storage: decode keys of %s: %w", res.ID, err)
	}
	return s, nil
}

// findAccount finds the account of a name in any subscription: account
// names are DNS names, unique across the installation.
func findAccount(ctx context.Context, resources ResourceLister, name string) (store.Resource, bool, error) {
	return store.FindByName(ctx, resources, AccountType, name)
}

// ProviderActions are the Microsoft.Storage operations on a subscription:
// checkNameAvailability. Register them with arm.Registry.AddProviderAction.
func (a *Accounts) ProviderActions() []arm.ProviderAction {
	return []arm.ProviderAction{{
		Namespace: Namespace, Name: "checkNameAvailability", Method: http.MethodPost,
		APIVersions: APIVersions(), Action: "Microsoft.Storage/checkNameAvailability/read",
		Run: a.checkNameAvailability,
	}}
}

func (a *Accounts) checkNameAvailability(ctx context.Context, _ string, body json.RawMessage, _ arm.Principal) (any, error) {
	var in struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent",
			"The request body must be {\"name\": \"<account name>\", \"type\": \"Microsoft.Storage/storageAccounts\"}: %v", err)
	}
	if !accountName.MatchString(in.Name) {
		return map[string]any{"nameAvailable": false, "reason": "AccountNameInvalid", "message": errAccountNameInvalid(in.Name).Message}, nil
	}
	_, found, err := findAccount(ctx, a.cfg.Resources, in.Name)
	if err != nil {
		return nil, err
	}
	if found {
		return map[string]any{"nameAvailable": false, "reason": "AlreadyExists", "message": errAccountNameTaken(in.Name).Message}, nil
	}
	return map[string]any{"nameAvailable": true}, nil
}
