package arm

import (
	"net/http"
	"strings"
)

// Principal is the caller of a control-plane request.
type Principal struct {
	ObjectID string
	TenantID string
	AppID    string
	// Type is ServicePrincipal, User or ManagedIdentity (the ARM principalType).
	Type string
}

// Authenticator identifies the caller of a request. It returns an *Error
// (401) when the request carries no acceptable credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Authorizer decides whether a principal may perform an ARM action
// ("Microsoft.Resources/subscriptions/resourceGroups/write") on a scope.
// It returns an *Error (403) when not.
type Authorizer interface {
	Authorize(r *http.Request, p Principal, action, scope string) error
}

// BearerPresence accepts any request that carries a bearer token without
// checking it. It is the control plane's authenticator until the identity
// plane provides a verifying one, and it still answers a missing or
// malformed Authorization header the way ARM does.
type BearerPresence struct{}

// Authenticate implements Authenticator.
func (BearerPresence) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, Errorf(http.StatusUnauthorized, "AuthenticationFailed",
			"Authentication failed. The 'Authorization' header is missing. Send 'Authorization: Bearer <token>' with a token for the resource manager audience.")
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, Errorf(http.StatusUnauthorized, "AuthenticationFailedInvalidHeader",
			"Authentication failed. The 'Authorization' header is provided in an invalid format. Send 'Authorization: Bearer <token>'.")
	}
	return Principal{Type: "ServicePrincipal"}, nil
}

// AllowAll authorizes everything; used until RBAC is wired in.
type AllowAll struct{}

// Authorize implements Authorizer.
func (AllowAll) Authorize(*http.Request, Principal, string, string) error { return nil }
