package servicebus

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// RBAC data actions of the operations.
const (
	actionSend    = "Microsoft.ServiceBus/namespaces/messages/send/action"
	actionReceive = "Microsoft.ServiceBus/namespaces/messages/receive/action"
)

// authorize runs the request's credentials through the checks Service Bus
// makes: SAS (rule key, rights, scope) or Bearer (token, RBAC at the
// entity), then the namespace's network rules.
func (h *Handler) authorize(req *request) error {
	right, action := "Listen", actionReceive
	if req.op == "send" {
		right, action = "Send", actionSend
	}
	ip := clientIP(req.r)
	header := strings.TrimSpace(req.r.Header.Get("Authorization"))
	resource := "sb://" + req.host + "/" + strings.TrimSuffix(req.entity, "/$DeadLetterQueue")
	claimErr := fail(http.StatusUnauthorized,
		"Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: '%s'.", right, resource)
	switch {
	case header == "":
		return fail(http.StatusUnauthorized, "MissingToken: The request has no Authorization header. Send 'SharedAccessSignature sr=...&sig=...&se=...&skn=...' signed with an authorization rule's key, or 'Bearer <token>' for the audience https://servicebus.azure.net.")
	case len(header) > 7 && strings.EqualFold(header[:7], "Bearer "):
		caller, err := h.cfg.Access.Authenticate(req.r.Context(), strings.TrimSpace(header[7:]), identity.ServiceServiceBus)
		if d, ok := access.IsDenial(err); ok {
			return &sbError{status: http.StatusUnauthorized, detail: "InvalidToken: " + d.Reason + ".", cause: err}
		}
		if err != nil {
			return err
		}
		if err := h.cfg.Access.Authorize(caller, action, true, req.scope()); err != nil {
			if _, ok := access.IsDenial(err); ok {
				claimErr.cause = err
				return claimErr
			}
			return err
		}
		return h.admit(req, ip, &caller)
	}
	if req.ns.disableLocalAuth {
		return fail(http.StatusUnauthorized, "LocalAuthDisabled: Authorization failed because SAS authentication has been disabled for the namespace '%s' (disableLocalAuth is true). Use a Microsoft Entra token (Bearer) with a Service Bus data role, or set disableLocalAuth to false.", req.ns.name)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return fail(http.StatusUnauthorized, "MalformedToken: %v.", err)
	}
	if tok.Expired(h.cfg.Now(), sas.ClockSkew) {
		return fail(http.StatusUnauthorized, "ExpiredToken: The token is expired. Expiration time: '%s'. Sign a new token.", tok.Expiry.UTC().Format("2006-01-02 15:04:05Z"))
	}
	scoped, ok := sasScope(tok, req.ns.name)
	if !ok || !scoped.Covers(req.ns.name+"/"+req.entity) {
		return fail(http.StatusUnauthorized, "InvalidAudience: The token's resource '%s' does not cover '%s'. Sign the token for the namespace (sb://%s/) or the entity.", tok.Resource, resource, req.host)
	}
	rule, found := req.findRule(tok.KeyName)
	if !found {
		return fail(http.StatusUnauthorized, "InvalidSignature: The token names the key '%s', which is not an authorization rule of the namespace '%s' or of this entity.", tok.KeyName, req.ns.name)
	}
	if !tok.VerifyRawKey(rule.PrimaryKey) && !tok.VerifyRawKey(rule.SecondaryKey) {
		return fail(http.StatusUnauthorized, "InvalidSignature: The token has an invalid signature. Sign it with the primary or secondary key of the rule '%s' (the key string itself is the HMAC key).", rule.Name)
	}
	if !rule.Has(right) {
		return claimErr
	}
	return h.admit(req, ip, nil)
}

func (h *Handler) admit(req *request, ip netip.Addr, caller *access.Caller) error {
	err := h.cfg.Access.Admit(req.ns.network, ip, caller)
	if d, ok := access.IsDenial(err); ok {
		return &sbError{status: http.StatusForbidden, detail: "IpFilterDenied: " + d.Reason + ".", cause: err}
	}
	return err
}

// sasScope rewrites the token's resource (sb://ns.servicebus.x:443/q,
// https://ns.servicebus.x/q, ns.servicebus.x) as "ns/q" when its host is
// the namespace, so Covers compares paths only.
func sasScope(tok sas.Token, ns string) (sas.Token, bool) {
	r := tok.Resource
	if i := strings.Index(r, "://"); i >= 0 {
		r = r[i+3:]
	}
	host, path, _ := strings.Cut(r, "/")
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	label, _, _ := strings.Cut(host, ".")
	if !strings.EqualFold(label, ns) {
		return tok, false
	}
	tok.Resource = ns + "/" + path
	return tok, true
}

// findRule finds a rule by key name: the namespace's, then the queue's or
// topic's own rules (a subscription is reached through its topic's).
func (req *request) findRule(name string) (sbresource.AuthRule, bool) {
	rules := req.ns.rules
	switch {
	case req.queue != nil:
		rules = append(rules[:len(rules):len(rules)], req.queue.rules...)
	case req.topic != nil:
		rules = append(rules[:len(rules):len(rules)], req.topic.rules...)
	}
	for _, r := range rules {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return sbresource.AuthRule{}, false
}

func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
