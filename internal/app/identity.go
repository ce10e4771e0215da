package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
)

// tokenAuthenticator is the control plane's Authenticator: a bearer token
// from this tenant's issuer for the resource manager audience.
type tokenAuthenticator struct {
	validator  *identity.Validator
	principals store.Principals
}

func (a tokenAuthenticator) Authenticate(r *http.Request) (arm.Principal, error) {
	if _, err := (arm.BearerPresence{}).Authenticate(r); err != nil {
		return arm.Principal{}, err
	}
	token := strings.TrimSpace(r.Header.Get("Authorization")[len("Bearer "):])
	c, err := a.validator.Validate(r.Context(), token, identity.ServiceARM)
	var ve *identity.ValidationError
	if errors.As(err, &ve) {
		switch ve.Kind {
		case "expired":
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "ExpiredAuthenticationToken",
				"The access token expiry UTC time is earlier than current UTC time: %s. Get a new token.", ve.Reason)
		case "audience":
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience",
				"The access token has been obtained for wrong audience or resource: %s. It should exactly match one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.", ve.Reason)
		default:
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "InvalidAuthenticationToken",
				"The access token is invalid: %s.", ve.Reason)
		}
	}
	if err != nil {
		return arm.Principal{}, fmt.Errorf("app: validate token: %w", err)
	}
	typ := "ServicePrincipal"
	if c.IDType == "user" {
		typ = "User"
	}
	return arm.Principal{ObjectID: c.ObjectID, TenantID: c.TenantID, AppID: c.AppID, Type: typ}, nil
}

// rbacAuthorizer is the control plane's Authorizer.
type rbacAuthorizer struct{ engine *rbac.Engine }

func (a rbacAuthorizer) Authorize(_ *http.Request, p arm.Principal, action, scope string) error {
	return a.decide(p, action, scope)
}

// AuthorizeAction is the form msi.Manager uses.
func (a rbacAuthorizer) AuthorizeAction(_ context.Context, p arm.Principal, action, scope string) error {
	return a.decide(p, action, scope)
}

func (a rbacAuthorizer) decide(p arm.Principal, action, scope string) error {
	if scope == "" {
		scope = "/"
	}
	d := a.engine.Authorize(p.ObjectID, action, false, scope)
	if d.Allowed {
		return nil
	}
	return arm.Errorf(http.StatusForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. %s If access was recently granted, please refresh your credentials.",
		p.AppID, p.ObjectID, action, scope, d.Reason)
}

// Operator is the service principal created at first start for the
// installation's operator; `outpost env` prints its credentials.
type Operator struct {
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ObjectID     string `json:"objectId"`
	ClientSecret string `json:"clientSecret"`
}

const operatorName = "outpost-operator"

func operatorFile(dataDir string) string { return filepath.Join(dataDir, "operator.json") }

// ensureOperator makes sure this node's data directory holds working
// operator credentials and that the operator owns the default subscription.
// A node with a fresh data directory on a shared database adds a secret of
// its own instead of replacing the others'.
func (a *App) ensureOperator(ctx context.Context) (Operator, error) {
	path := operatorFile(a.cfg.DataDir)
	var op Operator
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &op); err != nil {
			return Operator{}, fmt.Errorf("app: %s: %w", path, err)
		}
		if _, err := a.directory.AuthenticateSecret(ctx, op.ClientID, op.ClientSecret); err == nil {
			return op, a.ensureOwner(ctx, op.ObjectID)
		}
	}
	sps, err := a.directory.List(ctx, store.PrincipalFilter{Kind: store.KindServicePrincipal})
	if err != nil {
		return Operator{}, fmt.Errorf("app: operator: %w", err)
	}
	var p store.Principal
	var secret string
	for _, sp := range sps {
		if sp.Name == operatorName {
			p = sp
		}
	}
	if p.ObjectID == "" {
		if p, secret, err = a.directory.CreateServicePrincipal(ctx, operatorName); err != nil {
			return Operator{}, fmt.Errorf("app: operator: %w", err)
		}
	} else if secret, err = a.directory.ResetSecret(ctx, p.ObjectID, true); err != nil {
		return Operator{}, fmt.Errorf("app: operator: %w", err)
	}
	op = Operator{TenantID: a.installation.TenantID, ClientID: p.AppID, ObjectID: p.ObjectID, ClientSecret: secret}
	b, _ := json.MarshalIndent(op, "", "  ")
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return Operator{}, fmt.Errorf("app: operator: %w", err)
	}
	return op, a.ensureOwner(ctx, p.ObjectID)
}

// ensureOwner assigns Owner on the default subscription to the operator,
// with a role assignment name derived from the pair so every node agrees.
func (a *App) ensureOwner(ctx context.Context, objectID string) error {
	owner, _ := authz.FindBuiltIn("Owner")
	scope := arm.SubscriptionID(a.installation.SubscriptionID)
	sum := sha256.Sum256([]byte(scope + "|" + objectID + "|" + owner.ID))
	h := fmt.Sprintf("%x", sum[:16])
	name := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	id, err := arm.ParseResourceID(scope + "/providers/Microsoft.Authorization/roleAssignments/" + name)
	if err != nil {
		return fmt.Errorf("app: operator role: %w", err)
	}
	if _, err := a.store.Resources().Get(ctx, id.String()); err == nil {
		return nil
	}
	body := arm.Document{}
	body.Set("properties", map[string]string{"roleDefinitionId": owner.FullID(scope), "principalId": objectID})
	_, err = a.arm.PutResource(ctx, arm.PutInput{ID: id, APIVersion: "2022-04-01", Body: body, Principal: arm.Principal{ObjectID: objectID}})
	if err != nil && arm.AsError(err).Code != "RoleAssignmentExists" {
		return fmt.Errorf("app: operator role: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
