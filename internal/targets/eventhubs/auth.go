package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// Access makes the data plane's access decisions; *access.Checker
// implements it.
type Access interface {
	Authenticate(ctx context.Context, token string, service identity.Service) (access.Caller, error)
	Authorize(caller access.Caller, action string, isDataAction bool, scope string) error
	Admit(n access.Network, ip netip.Addr, caller *access.Caller) error
}

// ActionSend is the RBAC data action of a send.
const ActionSend = "Microsoft.EventHub/namespaces/messages/send/action"

// sasSkew tolerates clocks slightly apart, as the service does.
const sasSkew = 5 * time.Minute

// target is what a request acts on, for authorization and messages.
type target struct {
	ns       *ehresource.NamespaceView
	eh       *ehresource.EventHubView // nil when the event hub does not exist
	entity   string                   // the event hub name as requested
	host     string                   // {ns}.servicebus.{suffix}
	resource string                   // sb://{host}/{entity}, for messages
}

// scope is the event hub's ARM id: RBAC is checked there, so a role on the
// event hub, the namespace or anything above grants it.
func (t target) scope() string {
	if t.eh != nil {
		return t.eh.ID
	}
	return t.ns.ID + "/eventhubs/" + t.entity
}

// authorize checks the request's credentials for sending to t: a SAS
// token from a rule with Send, or a bearer token whose principal holds the
// send data action at the event hub; then the namespace's network rules.
func (h *Handler) authorize(ctx context.Context, r *http.Request, t target) error {
	ip := clientIP(r)
	header := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, _ := strings.Cut(header, " ")
	switch {
	case header == "":
		return errorf(http.StatusUnauthorized,
			"MissingToken: The request contains no authorization header. Send 'Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…' or 'Authorization: Bearer <token for https://eventhubs.azure.net/>'.")
	case strings.EqualFold(scheme, "Bearer"):
		return h.authorizeBearer(ctx, strings.TrimSpace(token), t, ip)
	case strings.EqualFold(scheme, "SharedAccessSignature"):
		return h.authorizeSAS(header, t, ip)
	}
	return errorf(http.StatusUnauthorized,
		"InvalidAuthorizationHeader: The authorization scheme '%s' is not supported. Use 'SharedAccessSignature' or 'Bearer'.", scheme)
}

func (h *Handler) authorizeSAS(header string, t target, ip netip.Addr) error {
	if t.ns.DisableLocalAuth {
		return errorf(http.StatusUnauthorized,
			"LocalAuthDisabled: Shared access signature (SAS) authorization is disabled for namespace '%s' (disableLocalAuth is true). Use a Microsoft Entra ID bearer token, or set properties.disableLocalAuth to false on the namespace.", t.ns.Name)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return errorf(http.StatusUnauthorized, "InvalidSignature: The token is malformed: %v.", err)
	}
	if tok.Expired(h.now(), sasSkew) {
		return errorf(http.StatusUnauthorized, "ExpiredToken: The token is expired. Expiration time: '%s'. Sign a new token with a later se.",
			tok.Expiry.UTC().Format("1/2/2006 3:04:05 PM"))
	}
	if tok.KeyName == "" {
		return errorf(http.StatusUnauthorized, "InvalidSignature: The token has no key name (skn); add skn=<authorization rule name>.")
	}
	rule, where, ok := findRule(t, tok.KeyName)
	if !ok {
		return errorf(http.StatusUnauthorized,
			"InvalidSignature: The token's key name '%s' is not an authorization rule of namespace '%s' or of event hub '%s'.", tok.KeyName, t.ns.Name, t.entity)
	}
	if !tok.VerifyRawKey(rule.PrimaryKey) && !tok.VerifyRawKey(rule.SecondaryKey) {
		return errorf(http.StatusUnauthorized,
			"InvalidSignature: The token has an invalid signature. It must be signed with the primary or secondary key of %s rule '%s' (the key string's bytes are the HMAC-SHA256 key).", where, rule.Name)
	}
	if !h.sasCovers(tok.Resource, t) {
		return errorf(http.StatusUnauthorized,
			"InvalidAudience: The token's resource (sr) '%s' does not cover '%s'. Sign the token for the namespace or this event hub.", tok.Resource, t.resource)
	}
	if !rule.Grants(ehresource.RightSend) {
		return errorf(http.StatusUnauthorized,
			"Unauthorized access. 'Send' claim(s) are required to perform this operation. Resource: '%s'. The %s rule '%s' grants %s.",
			t.resource, where, rule.Name, strings.Join(rule.Rights, ", "))
	}
	return h.admit(t, ip, nil)
}

// findRule finds the signing rule: the event hub's rules, then the namespace's.
func findRule(t target, name string) (ehresource.Rule, string, bool) {
	if t.eh != nil {
		for _, r := range t.eh.Rules {
			if strings.EqualFold(r.Name, name) {
				return r, "event hub", true
			}
		}
	}
	for _, r := range t.ns.Rules {
		if strings.EqualFold(r.Name, name) {
			return r, "namespace", true
		}
	}
	return ehresource.Rule{}, "", false
}

// sasCovers compares sr with the target by host and path, whatever the
// scheme (https://, sb://, http:// or none) and port, as the service does.
// In path-style mode the namespace is the first path segment instead.
func (h *Handler) sasCovers(sr string, t target) bool {
	s := strings.ToLower(strings.TrimSpace(sr))
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	host, path, _ := strings.Cut(s, "/")
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	path = "/" + strings.Trim(path, "/")
	entity := "/" + strings.ToLower(t.entity)
	covers := func(scope, target string) bool {
		return scope == "/" || scope == target || strings.HasPrefix(target, scope+"/")
	}
	if host == t.host && covers(path, entity) {
		return true
	}
	return h.cfg.PathStyle && covers(path, "/"+strings.ToLower(t.ns.Name)+entity)
}

func (h *Handler) authorizeBearer(ctx context.Context, token string, t target, ip netip.Addr) error {
	if h.cfg.Access == nil {
		return errorf(http.StatusUnauthorized, "InvalidToken: Bearer tokens are not accepted here: the identity plane is not configured. Use a shared access signature.")
	}
	caller, err := h.cfg.Access.Authenticate(ctx, token, identity.ServiceEventHubs)
	if d, ok := access.IsDenial(err); ok {
		return errorf(http.StatusUnauthorized, "InvalidToken: %s. Event Hubs accepts tokens for the audience https://eventhubs.azure.net/ (scope https://eventhubs.azure.net/.default).", strings.TrimSuffix(d.Reason, "."))
	}
	if err != nil {
		return fmt.Errorf("eventhubs: authenticate: %w", err)
	}
	if err := h.cfg.Access.Authorize(caller, ActionSend, true, t.scope()); err != nil {
		if d, ok := access.IsDenial(err); ok {
			h.cfg.Log.Info("send refused", "namespace", t.ns.Name, "eventhub", t.entity, "principal", caller.PrincipalID, "reason", d.Reason)
			return errorf(http.StatusUnauthorized,
				"Unauthorized access. 'Send' claim(s) are required to perform this operation. Resource: '%s'. Principal %s has no role granting %s at %s or above; assign 'Azure Event Hubs Data Sender'.",
				t.resource, caller.PrincipalID, ActionSend, t.scope())
		}
		return fmt.Errorf("eventhubs: authorize: %w", err)
	}
	return h.admit(t, ip, &caller)
}

// admit applies the namespace's network rules.
func (h *Handler) admit(t target, ip netip.Addr, caller *access.Caller) error {
	var err error
	if h.cfg.Access != nil {
		err = h.cfg.Access.Admit(t.ns.Network, ip, caller)
	} else if ok, reason := access.Evaluate(t.ns.Network, ip, caller); !ok {
		err = &access.Denial{Step: access.StepNetwork, Reason: reason}
	}
	if d, ok := access.IsDenial(err); ok {
		return errorf(http.StatusForbidden, "Ip has been prevented to connect to the endpoint: %s.", strings.TrimSuffix(d.Reason, "."))
	}
	if err != nil {
		return fmt.Errorf("eventhubs: network rules: %w", err)
	}
	return nil
}

func clientIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}

// isRefusal reports whether err is a data-plane refusal (not a failure).
func isRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
