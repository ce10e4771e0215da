package app

import (
	"context"
	"fmt"
	"time"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
)

// buildIdentity wires the identity plane: keys, issuer, validator,
// directory, RBAC engine and managed identities.
func (a *App) buildIdentity(ctx context.Context) error {
	ic := a.cfg.Identity
	now := time.Now
	// A retired key stays published while any token it signed may be valid.
	retention := ic.TokenLifetime + ic.ClockSkew + time.Minute
	a.keys = identity.NewKeyRing(a.store.Settings(), ic.KeyRotation, retention, now)
	if err := a.keys.Refresh(ctx); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	tenant := a.installation.TenantID
	a.issuer = identity.NewIssuer(tenant, a.keys, ic.TokenLifetime, ic.TokenReuse, now)
	a.validator = identity.NewValidator(tenant, a.keys, a.store.Principals(), ic.ClockSkew, now)
	a.directory = identity.NewDirectory(a.store.Principals(), now)
	a.rbac = rbac.NewEngine(a.store.Resources(), ic.PropagationDelay, now, a.log.With("component", "rbac"))
	if err := a.rbac.ReloadNow(ctx); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	// A deleted principal's tokens stop working at once, and its role
	// assignments go with it, as in Azure.
	a.directory.OnDelete(func(ctx context.Context, objectID string) {
		a.validator.Invalidate()
		a.issuer.Forget()
		if err := a.rbac.DeleteAssignmentsOf(ctx, objectID); err != nil {
			a.log.Error("delete role assignments of deleted principal", "principal", objectID, "err", err)
		}
	})
	a.msi = msi.NewManager(a.store.Resources(), a.store.Principals(), a.directory, rbacAuthorizer{engine: a.rbac}, tenant)
	a.tokens = msi.NewTokenSource(a.store.Resources(), a.store.Principals(), a.issuer)
	h, err := msi.LoadHeaderSigner(ctx, a.store.Settings())
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.msiHeader = h
	return nil
}

// RotateSigningKey replaces the token signing key now; the old key stays
// published until every token it signed has expired.
func (a *App) RotateSigningKey(ctx context.Context) error {
	if err := a.keys.Rotate(ctx); err != nil {
		return err
	}
	a.issuer.Forget()
	return nil
}

// Directory exposes the tenant's principals (tests and local tools).
func (a *App) Directory() *identity.Directory { return a.directory }
