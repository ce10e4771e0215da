package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// Directory manages the tenant's principals: service principals with
// secrets and certificates, users with passwords, and managed identities.
// It is the one place principals are created and deleted, so it can tell
// the rest of the identity plane (validation cache, role assignments).
type Directory struct {
	principals store.Principals
	now        func() time.Time
	// onDelete runs after a principal is deleted (drop caches, delete its
	// role assignments). Set with OnDelete before serving.
	onDelete []func(ctx context.Context, objectID string)
	// secretLifetime is how long a new client secret is valid.
	secretLifetime time.Duration
}

// NewDirectory builds a directory over the store.
func NewDirectory(principals store.Principals, now func() time.Time) *Directory {
	return &Directory{principals: principals, now: now, secretLifetime: 2 * 365 * 24 * time.Hour}
}

// OnDelete registers a hook run after every principal deletion.
func (d *Directory) OnDelete(f func(ctx context.Context, objectID string)) {
	d.onDelete = append(d.onDelete, f)
}

// Get returns a principal by object id.
func (d *Directory) Get(ctx context.Context, objectID string) (store.Principal, error) {
	return d.principals.Get(ctx, objectID)
}

// GetByAppID returns a principal by client id.
func (d *Directory) GetByAppID(ctx context.Context, appID string) (store.Principal, error) {
	return d.principals.GetByAppID(ctx, appID)
}

// List lists principals.
func (d *Directory) List(ctx context.Context, f store.PrincipalFilter) ([]store.Principal, error) {
	return d.principals.List(ctx, f)
}

// CreateServicePrincipal creates an application principal with one client
// secret and returns the secret (shown once).
func (d *Directory) CreateServicePrincipal(ctx context.Context, name string) (store.Principal, string, error) {
	secret, cred := newSecret(d.now(), d.secretLifetime)
	p := store.Principal{
		ObjectID: newUUID(), AppID: newUUID(), Kind: store.KindServicePrincipal, Name: name,
		Credentials: credentials{Secrets: []secretCredential{cred}}.encode(),
	}
	if err := d.principals.Create(ctx, p); err != nil {
		return store.Principal{}, "", fmt.Errorf("identity: create service principal: %w", err)
	}
	p, err := d.principals.Get(ctx, p.ObjectID)
	return p, secret, err
}

// ResetSecret replaces (or, with appendSecret, adds) a client secret.
func (d *Directory) ResetSecret(ctx context.Context, objectID string, appendSecret bool) (string, error) {
	secret, cred := newSecret(d.now(), d.secretLifetime)
	_, err := d.principals.Update(ctx, objectID, func(p *store.Principal) error {
		if p.Kind != store.KindServicePrincipal {
			return fmt.Errorf("identity: %s is a %s; only service principals have secrets", objectID, p.Kind)
		}
		c, err := decodeCredentials(p.Credentials)
		if err != nil {
			return err
		}
		if !appendSecret {
			c.Secrets = nil
		}
		c.Secrets = append(c.Secrets, cred)
		p.Credentials = c.encode()
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("identity: reset secret: %w", err)
	}
	return secret, nil
}

// AddCertificate lets a certificate's key sign client assertions for the
// service principal.
func (d *Directory) AddCertificate(ctx context.Context, objectID string, cert *x509.Certificate) error {
	_, err := d.principals.Update(ctx, objectID, func(p *store.Principal) error {
		if p.Kind != store.KindServicePrincipal {
			return fmt.Errorf("identity: %s is a %s; only service principals have certificates", objectID, p.Kind)
		}
		c, err := decodeCredentials(p.Credentials)
		if err != nil {
			return err
		}
		c.Certificates = append(c.Certificates, certCredential{
			KeyID: newUUID(), Thumbprint: Thumbprint(cert.Raw), CertDER: cert.Raw, Expires: cert.NotAfter,
		})
		p.Credentials = c.encode()
		return nil
	})
	if err != nil {
		return fmt.Errorf("identity: add certificate: %w", err)
	}
	return nil
}

// CreateUser creates a user who signs in with a password.
func (d *Directory) CreateUser(ctx context.Context, name, password string) (store.Principal, error) {
	if len(password) < 8 {
		return store.Principal{}, errors.New("identity: the password must have at least 8 characters")
	}
	h, err := hashPassword(password)
	if err != nil {
		return store.Principal{}, err
	}
	p := store.Principal{ObjectID: newUUID(), Kind: store.KindUser, Name: name, Credentials: credentials{PasswordHash: h}.encode()}
	if err := d.principals.Create(ctx, p); err != nil {
		return store.Principal{}, fmt.Errorf("identity: create user: %w", err)
	}
	return d.principals.Get(ctx, p.ObjectID)
}

// CreateManagedIdentity creates the principal of a managed identity that
// belongs to resourceID.
func (d *Directory) CreateManagedIdentity(ctx context.Context, resourceID, name string) (store.Principal, error) {
	p := store.Principal{ObjectID: newUUID(), AppID: newUUID(), Kind: store.KindManagedIdentity, Name: name, ResourceID: resourceID}
	if err := d.principals.Create(ctx, p); err != nil {
		return store.Principal{}, fmt.Errorf("identity: create managed identity: %w", err)
	}
	return d.principals.Get(ctx, p.ObjectID)
}

// Delete removes a principal and runs the deletion hooks. Deleting an
// absent principal is not an error (deletes are retried after crashes).
func (d *Directory) Delete(ctx context.Context, objectID string) error {
	if err := d.principals.Delete(ctx, objectID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("identity: delete principal: %w", err)
	}
	for _, f := range d.onDelete {
		f(ctx, objectID)
	}
	return nil
}

// AuthError is an OAuth2 error (RFC 6749 §5.2) with Entra's AADSTS code.
type AuthError struct {
	Status      int
	Code        string // invalid_client, invalid_request, ...
	AADSTS      int
	Description string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s: AADSTS%d: %s", e.Code, e.AADSTS, e.Description)
}

// AuthenticateSecret checks a client id and secret.
func (d *Directory) AuthenticateSecret(ctx context.Context, clientID, secret string) (store.Principal, error) {
	p, err := d.principals.GetByAppID(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.Kind != store.KindServicePrincipal) {
		return store.Principal{}, &AuthError{Status: 400, Code: "unauthorized_client", AADSTS: 700016,
			Description: fmt.Sprintf("Application with identifier '%s' was not found in the directory. Check the client id, or create the application with `outpost ad sp create`.", clientID)}
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("identity: look up client: %w", err)
	}
	c, err := decodeCredentials(p.Credentials)
	if err != nil {
		return store.Principal{}, err
	}
	ok, expired := c.checkSecret(secret, d.now())
	switch {
	case expired:
		return store.Principal{}, &AuthError{Status: 401, Code: "invalid_client", AADSTS: 7000222,
			Description: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Create a new secret with `outpost ad sp credential reset`.", clientID)}
	case !ok:
		return store.Principal{}, &AuthError{Status: 401, Code: "invalid_client", AADSTS: 7000215,
			Description: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."}
	}
	return p, nil
}

// AuthenticatePassword checks a user's password.
func (d *Directory) AuthenticatePassword(ctx context.Context, name, password string) (store.Principal, error) {
	p, err := d.principals.GetUser(ctx, strings.TrimSpace(name))
	if err == nil {
		c, derr := decodeCredentials(p.Credentials)
		if derr == nil && c.checkPassword(password) {
			return p, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Principal{}, fmt.Errorf("identity: look up user: %w", err)
	}
	return store.Principal{}, &AuthError{Status: 400, Code: "invalid_grant", AADSTS: 50126,
		Description: "Error validating credentials due to invalid username or password."}
}
