package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/authz"
)

// Step names the check that refused a request.
type Step string

// The checks, in the order they run.
const (
	StepAuthenticate Step = "authenticate"
	StepAuthorize    Step = "authorize"
	StepNetwork      Step = "network"
)

// Denial is a refused request: which check said no and why.
type Denial struct {
	Step   Step
	Reason string
	// Cause is the underlying error, if any (e.g. *identity.ValidationError).
	Cause error
}

func (d *Denial) Error() string { return string(d.Step) + ": " + d.Reason }
func (d *Denial) Unwrap() error { return d.Cause }

// IsDenial reports whether err is a refusal (as opposed to a failure to
// decide, such as a store outage) and returns it.
func IsDenial(err error) (*Denial, bool) {
	var d *Denial
	ok := errors.As(err, &d)
	return d, ok
}

// Caller is an authenticated principal.
type Caller struct {
	PrincipalID string
	// ManagedIdentityResourceID is the token's xms_mirid: the resource a
	// managed identity belongs to ("" for service principals and users).
	// For a system-assigned identity it is the resource itself; for a
	// user-assigned one, the userAssignedIdentities resource.
	ManagedIdentityResourceID string
	TenantID                  string
	AppID                     string
}

// iotHubType is the resource type whose system-assigned identity the
// trusted-services bypass admits.
const iotHubType = "microsoft.devices/iothubs"

// TrustedService reports whether the caller is a system-assigned identity of
// an IoT hub — the only caller the trusted-services bypass admits. A
// user-assigned identity's xms_mirid names the identity resource, not the
// hub, so it never qualifies.
func (c Caller) TrustedService() bool {
	id := strings.ToLower(c.ManagedIdentityResourceID)
	i := strings.Index(id, "/providers/")
	if i < 0 {
		return false
	}
	rest := strings.Split(strings.Trim(id[i+len("/providers/"):], "/"), "/")
	// microsoft.devices/iothubs/{name}, nothing below it.
	return len(rest) == 3 && rest[0]+"/"+rest[1] == iotHubType && rest[2] != ""
}

// Network is a resource's network configuration, already read from its ARM
// document (storage networkAcls, Event Hubs / Service Bus networkRuleSets).
type Network struct {
	// PublicNetworkAccess is "Enabled" (or empty), "Disabled" or
	// "SecuredByPerimeter" (treated as Disabled).
	PublicNetworkAccess string
	// DefaultAction is "Allow" (or empty) or "Deny".
	DefaultAction string
	// IPRules are the addresses and CIDR ranges admitted when the default
	// action is Deny. Malformed entries never match.
	IPRules []string
	// TrustedServices is bypass "AzureServices" (storage) or
	// trustedServiceAccessEnabled (Event Hubs, Service Bus).
	TrustedServices bool
	// Resource names the resource in messages ("storage account 'acct'").
	Resource string
}

func (n Network) publicDisabled() bool {
	return strings.EqualFold(n.PublicNetworkAccess, "Disabled") || strings.EqualFold(n.PublicNetworkAccess, "SecuredByPerimeter")
}

// TokenValidator validates bearer tokens; *identity.Validator implements it.
type TokenValidator interface {
	Validate(ctx context.Context, token string, service identity.Service) (identity.Claims, error)
}

// RoleEvaluator answers RBAC questions; *rbac.Engine implements it.
type RoleEvaluator interface {
	Authorize(principalID, action string, isDataAction bool, scope string) authz.Decision
}

// Checker makes access decisions. It is safe for concurrent use.
type Checker struct {
	tokens TokenValidator
	roles  RoleEvaluator
	log    *slog.Logger
}

// New returns a checker.
func New(tokens TokenValidator, roles RoleEvaluator, log *slog.Logger) *Checker {
	return &Checker{tokens: tokens, roles: roles, log: log}
}

// Authenticate validates a bearer token for service.
func (c *Checker) Authenticate(ctx context.Context, token string, service identity.Service) (Caller, error) {
	claims, err := c.tokens.Validate(ctx, token, service)
	var ve *identity.ValidationError
	if errors.As(err, &ve) {
		d := &Denial{Step: StepAuthenticate, Reason: ve.Reason, Cause: err}
		c.log.Info("access refused", "service", service, "step", d.Step, "reason", d.Reason)
		return Caller{}, d
	}
	if err != nil {
		return Caller{}, fmt.Errorf("access: validate token: %w", err)
	}
	return Caller{
		PrincipalID: claims.ObjectID, ManagedIdentityResourceID: claims.ManagedIdentityResourceID,
		TenantID: claims.TenantID, AppID: claims.AppID,
	}, nil
}

// Authorize checks that RBAC grants action at scope (an ARM resource id,
// e.g. ".../storageAccounts/a/blobServices/default/containers/c"). Most
// data-plane operations are data actions; a few are control actions even on
// the data plane (Create Container is
// "Microsoft.Storage/storageAccounts/blobServices/containers/write").
func (c *Checker) Authorize(caller Caller, action string, isDataAction bool, scope string) error {
	dataAction := action
	dec := c.roles.Authorize(caller.PrincipalID, action, isDataAction, scope)
	if !dec.Allowed {
		d := &Denial{Step: StepAuthorize, Reason: fmt.Sprintf(
			"principal %s has no role assignment granting '%s' at '%s' or above (%s); assign a role such as the service's Data Contributor/Sender role",
			caller.PrincipalID, dataAction, scope, dec.Reason)}
		c.log.Info("access refused", "step", d.Step, "principal", caller.PrincipalID, "action", dataAction, "scope", scope, "reason", dec.Reason)
		return d
	}
	c.log.Debug("access granted", "principal", caller.PrincipalID, "action", dataAction, "scope", scope, "role", dec.RoleName, "at", dec.Scope)
	return nil
}

// Admit applies network rules to a request from ip. caller is nil for
// key-based requests (Shared Key, SAS), which the trusted-services bypass
// never admits.
func (c *Checker) Admit(n Network, ip netip.Addr, caller *Caller) error {
	ok, reason := Evaluate(n, ip, caller)
	if !ok {
		d := &Denial{Step: StepNetwork, Reason: reason}
		principal := ""
		if caller != nil {
			principal = caller.PrincipalID
		}
		c.log.Info("access refused", "step", d.Step, "resource", n.Resource, "ip", ip, "principal", principal, "reason", reason)
		return d
	}
	c.log.Debug("network admitted", "resource", n.Resource, "ip", ip, "reason", reason)
	return nil
}

// Evaluate is the pure network-rule decision: whether the request is
// admitted and why.
func Evaluate(n Network, ip netip.Addr, caller *Caller) (bool, string) {
	trusted := n.TrustedServices && caller != nil && caller.TrustedService()
	if n.publicDisabled() {
		if trusted {
			return true, "public network access is disabled; admitted as a trusted service (an IoT hub's system-assigned identity)"
		}
		return false, fmt.Sprintf("public network access to %s is disabled and the request did not come from a trusted service: %s",
			describe(n), whyNotTrusted(n, caller))
	}
	if !strings.EqualFold(n.DefaultAction, "Deny") {
		return true, "the default network action is Allow"
	}
	ip = ip.Unmap()
	for _, rule := range n.IPRules {
		if ipRuleMatches(rule, ip) {
			return true, fmt.Sprintf("client address %s matches IP rule %s", ip, rule)
		}
	}
	if trusted {
		return true, "no IP rule matches; admitted as a trusted service (an IoT hub's system-assigned identity)"
	}
	return false, fmt.Sprintf("the network rules of %s deny client address %s: no IP rule matches it and the default action is Deny (%s)",
		describe(n), ip, whyNotTrusted(n, caller))
}

func describe(n Network) string {
	if n.Resource != "" {
		return n.Resource
	}
	return "the resource"
}

func whyNotTrusted(n Network, caller *Caller) string {
	switch {
	case !n.TrustedServices:
		return "trusted Azure services are not allowed to bypass the rules"
	case caller == nil:
		return "the trusted-services bypass admits only an IoT hub's system-assigned identity, and this request used a key or SAS"
	case caller.ManagedIdentityResourceID == "":
		return "the trusted-services bypass admits only an IoT hub's system-assigned identity, and the caller is not a managed identity"
	default:
		return fmt.Sprintf("the trusted-services bypass admits only an IoT hub's system-assigned identity, and the caller is the managed identity of '%s' (a user-assigned identity needs public network access)", caller.ManagedIdentityResourceID)
	}
}

// ipRuleMatches compares an IP rule (address or CIDR, as Azure accepts them)
// with a client address.
func ipRuleMatches(rule string, ip netip.Addr) bool {
	rule = strings.TrimSpace(rule)
	if strings.Contains(rule, "/") {
		p, err := netip.ParsePrefix(rule)
		return err == nil && p.Masked().Contains(ip)
	}
	a, err := netip.ParseAddr(rule)
	return err == nil && a.Unmap() == ip
}
