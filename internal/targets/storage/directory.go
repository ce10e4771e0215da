package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
)

// Account is what the Blob data plane needs to know about one account.
type Account struct {
	Name       string // lower case
	ResourceID string
	Keys       [2]string
	// AllowSharedKeyAccess is false only when the account says so
	// (allowSharedKeyAccess null means true, as in Azure).
	AllowSharedKeyAccess bool
	// AllowBlobPublicAccess gates anonymous reads of public containers.
	AllowBlobPublicAccess bool
	Network               access.Network
	// delegationSecret derives user delegation keys.
	delegationSecret []byte
}

// BlobServiceID is the id of the account's blob service.
func (a Account) BlobServiceID() string { return a.ResourceID + "/blobServices/default" }

// ContainerID is the ARM id of one of the account's containers, the RBAC
// scope of its data.
func (a Account) ContainerID(container string) string {
	return a.BlobServiceID() + "/containers/" + container
}

// DelegationKey derives the value of a user delegation key from what the key
// carries (signed oid, tid, start, expiry, service, version), so any node
// recomputes it from a SAS without remembering which keys it handed out.
// Regenerating the account keys does not change it, as in Azure.
func (a Account) DelegationKey(fields ...string) []byte {
	m := hmac.New(sha256.New, a.delegationSecret)
	m.Write([]byte(a.Name))
	for _, f := range fields {
		m.Write([]byte{'\n'})
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// Directory resolves account names to accounts from the stored resources,
// cached briefly and reloaded at once after Invalidate.
type Directory struct {
	resources store.Resources
	ttl       time.Duration

	mu       sync.Mutex
	accounts map[string]Account
	loaded   time.Time
}

// NewDirectory builds an account directory.
func NewDirectory(resources store.Resources) *Directory {
	return &Directory{resources: resources, ttl: 2 * time.Second}
}

// Invalidate makes the next lookup reload.
func (d *Directory) Invalidate() {
	d.mu.Lock()
	d.loaded = time.Time{}
	d.mu.Unlock()
}

// Get returns an account by name (case-insensitive).
func (d *Directory) Get(ctx context.Context, name string) (Account, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.accounts == nil || time.Since(d.loaded) >= d.ttl {
		list, err := d.resources.List(ctx, store.ResourceFilter{Type: AccountType})
		if err != nil {
			return Account{}, false, fmt.Errorf("storage: list accounts: %w", err)
		}
		accounts := make(map[string]Account, len(list))
		for _, r := range list {
			if a, err := decodeAccount(r); err == nil {
				accounts[a.Name] = a
			}
		}
		d.accounts, d.loaded = accounts, time.Now()
	}
	a, ok := d.accounts[strings.ToLower(name)]
	return a, ok, nil
}

func decodeAccount(r store.Resource) (Account, error) {
	doc, err := arm.ParseDocument(r.Body)
	if err != nil {
		return Account{}, err
	}
	var props struct {
		AllowSharedKeyAccess  *bool       `json:"allowSharedKeyAccess"`
		AllowBlobPublicAccess bool        `json:"allowBlobPublicAccess"`
		PublicNetworkAccess   string      `json:"publicNetworkAccess"`
		NetworkACLs           NetworkACLs `json:"networkAcls"`
	}
	if err := doc.Decode("properties", &props); err != nil {
		return Account{}, err
	}
	var s stored
	if err := doc.Decode(storedMember, &s); err != nil {
		return Account{}, err
	}
	a := Account{
		Name: strings.ToLower(r.Name), ResourceID: r.ID,
		AllowSharedKeyAccess:  props.AllowSharedKeyAccess == nil || *props.AllowSharedKeyAccess,
		AllowBlobPublicAccess: props.AllowBlobPublicAccess,
		Network: access.Network{
			PublicNetworkAccess: props.PublicNetworkAccess, DefaultAction: props.NetworkACLs.DefaultAction,
			TrustedServices: trustedBypass(props.NetworkACLs.Bypass),
			Resource:        "storage account '" + r.Name + "'",
		},
	}
	for _, ip := range props.NetworkACLs.IPRules {
		a.Network.IPRules = append(a.Network.IPRules, ip.Value)
	}
	for i, k := range s.Keys {
		if i < 2 {
			a.Keys[i] = k.Value
		}
	}
	if a.delegationSecret, err = base64.StdEncoding.DecodeString(s.DelegationSecret); err != nil {
		return Account{}, err
	}
	return a, nil
}
