package servicebus

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// grant is what a put-token or SASL PLAIN proved: an authorization rule
// and its rights (SAS, PLAIN), or an Entra principal whose RBAC roles are
// checked per entity (JWT). It is the amqp.Claim's Principal.
type grant struct {
	rule   *sbresource.AuthRule
	caller *access.Caller
}

// Rights checked on links and $management operations.
const (
	rightSend   = "Send"
	rightListen = "Listen"
)

func cbsError(status int32, format string, args ...any) error {
	cond := wire.Symbol("amqp:unauthorized-access")
	if status == 404 {
		cond = "amqp:not-found"
	}
	e := wire.Errorf(cond, format, args...)
	return &amqp.RPCError{Status: status, Description: e.Description, Condition: cond}
}

// PutToken checks a CBS token: a SAS token signed with a namespace rule's
// key or the key of the entity's own rule, or an Entra ID token for
// https://servicebus.azure.net. The claim lasts as long as the token.
func (a *amqpHandler) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	view, err := a.namespace(ctx, c)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return amqp.Claim{}, cbsError(404, "%s", we.Description)
		}
		return amqp.Claim{}, err
	}
	host, path, _ := strings.Cut(amqp.NormalizeAudience(t.Audience), "/")
	if !eq(namespaceOf(host), view.name) {
		return amqp.Claim{}, cbsError(401, "InvalidAudience: The token is put for '%s', which is not in the namespace '%s'. Put it for sb://%s.servicebus.%s/{entity}.",
			t.Audience, view.name, view.name, a.h.cfg.DNSSuffix)
	}
	if t.Type == "jwt" || (!strings.HasPrefix(strings.ToLower(t.Token), "sharedaccesssignature") && strings.Count(t.Token, ".") == 2) {
		return a.putJWT(ctx, c, view, t)
	}
	if view.disableLocalAuth {
		return amqp.Claim{}, cbsError(401, "LocalAuthDisabled: SAS authentication has been disabled for the namespace '%s' (disableLocalAuth is true). Use a Microsoft Entra token with a Service Bus data role, or set disableLocalAuth to false.", view.name)
	}
	tok, err := sas.Parse(t.Token)
	if err != nil {
		return amqp.Claim{}, cbsError(401, "MalformedToken: %v.", err)
	}
	if tok.Expired(a.h.cfg.Now(), sas.ClockSkew) {
		return amqp.Claim{}, cbsError(401, "ExpiredToken: The token is expired. Expiration time: '%s'. Sign a new token.", tok.Expiry.UTC().Format("2006-01-02 15:04:05Z"))
	}
	scoped, ok := sasScope(tok, view.name)
	if !ok || !scoped.Covers(view.name+"/"+path) {
		return amqp.Claim{}, cbsError(401, "InvalidAudience: The token's resource '%s' does not cover '%s'. Sign the token for the namespace or the entity.", tok.Resource, t.Audience)
	}
	rule, found := findRule(view, tok.KeyName, path)
	if !found {
		return amqp.Claim{}, cbsError(401, "InvalidSignature: The token names the key '%s', which is not an authorization rule of the namespace '%s' or of the entity.", tok.KeyName, view.name)
	}
	if !tok.VerifyRawKey(rule.PrimaryKey) && !tok.VerifyRawKey(rule.SecondaryKey) {
		return amqp.Claim{}, cbsError(401, "InvalidSignature: The token has an invalid signature. Sign it with the primary or secondary key of the rule '%s' (the key string itself is the HMAC key).", rule.Name)
	}
	if err := a.admit(view, c, nil); err != nil {
		return amqp.Claim{}, &amqp.RPCError{Status: 403, Description: err.Error(), Condition: "amqp:unauthorized-access"}
	}
	return amqp.Claim{Audience: t.Audience, Expires: tok.Expiry.Add(sas.ClockSkew), Principal: &grant{rule: &rule}}, nil
}

func (a *amqpHandler) putJWT(ctx context.Context, c *amqp.Conn, view *namespaceView, t amqp.TokenRequest) (amqp.Claim, error) {
	caller, err := a.h.cfg.Access.Authenticate(ctx, t.Token, identity.ServiceServiceBus)
	if d, ok := access.IsDenial(err); ok {
		return amqp.Claim{}, cbsError(401, "InvalidToken: %s.", d.Reason)
	}
	if err != nil {
		return amqp.Claim{}, err
	}
	if err := a.admit(view, c, &caller); err != nil {
		return amqp.Claim{}, &amqp.RPCError{Status: 403, Description: err.Error(), Condition: "amqp:unauthorized-access"}
	}
	expires := jwtExpiry(t.Token)
	if expires.IsZero() {
		expires = a.h.cfg.Now().Add(time.Hour)
	}
	return amqp.Claim{Audience: t.Audience, Expires: expires, Principal: &grant{caller: &caller}}, nil
}

// jwtExpiry reads the exp claim of a token that has been validated.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	secs, err := claims.Exp.Int64()
	if err != nil {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}

// findRule finds a rule by key name: the namespace's, then the rules of
// the queue or topic path starts with (a subscription is reached through
// its topic's).
func findRule(view *namespaceView, name, path string) (sbresource.AuthRule, bool) {
	rules := view.rules
	first, _, _ := strings.Cut(path, "/")
	if q, ok := view.queues[strings.ToLower(first)]; ok {
		rules = append(rules[:len(rules):len(rules)], q.rules...)
	} else if t, ok := view.topics[strings.ToLower(first)]; ok {
		rules = append(rules[:len(rules):len(rules)], t.rules...)
	}
	for _, r := range rules {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return sbresource.AuthRule{}, false
}

func (a *amqpHandler) admit(view *namespaceView, c *amqp.Conn, caller *access.Caller) error {
	err := a.h.cfg.Access.Admit(view.network, c.Info().RemoteAddr, caller)
	if d, ok := access.IsDenial(err); ok {
		return errors.New("IpFilterDenied: " + d.Reason + ".")
	}
	return err
}

// plainCredentials are SASL PLAIN credentials that arrived before the
// namespace was known (no TLS server name): Open checks them.
type plainCredentials struct{ user, password string }

// AuthenticatePlain takes SASL PLAIN with an authorization rule's name
// and key: a namespace rule grants its rights on the namespace, a queue's
// or topic's rule on that entity, for as long as the connection lasts.
func (a *amqpHandler) AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error) {
	host := c.Host()
	if host == "" && c.Info().TLS != nil {
		host = strings.ToLower(c.Info().TLS.ServerName)
	}
	if host == "" {
		// Without a host the namespace is unknown until open names it.
		c.SetValue(plainKey{}, &plainCredentials{user: user, password: password})
		return nil, nil
	}
	view, err := a.h.dir.get(ctx, namespaceOf(host))
	if err != nil {
		return nil, err
	}
	if view == nil {
		return nil, errors.New("servicebus: SASL PLAIN for a namespace that does not exist")
	}
	audience, rule, err := plainGrant(view, user, password)
	if err != nil {
		return nil, err
	}
	return []amqp.Claim{{Audience: host + audience, Principal: &grant{rule: &rule}}}, nil
}

// plainGrant checks PLAIN credentials: the audience suffix ("" for the
// namespace, "/{entity}" for an entity's rule) and the rule.
func plainGrant(view *namespaceView, user, password string) (string, sbresource.AuthRule, error) {
	if view.disableLocalAuth {
		return "", sbresource.AuthRule{}, errors.New("servicebus: SASL PLAIN refused: disableLocalAuth is true")
	}
	matches := func(r sbresource.AuthRule) bool {
		return strings.EqualFold(r.Name, user) && (keyEqual(r.PrimaryKey, password) || keyEqual(r.SecondaryKey, password))
	}
	for _, r := range view.rules {
		if matches(r) {
			return "", r, nil
		}
	}
	for _, q := range view.queues {
		for _, r := range q.rules {
			if matches(r) {
				return "/" + q.name, r, nil
			}
		}
	}
	for _, t := range view.topics {
		for _, r := range t.rules {
			if matches(r) {
				return "/" + t.name, r, nil
			}
		}
	}
	return "", sbresource.AuthRule{}, errors.New("servicebus: SASL PLAIN refused: no authorization rule has that name and key")
}

func keyEqual(key, given string) bool {
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(given)) == 1
}

// checkDeferredPlain checks PLAIN credentials kept until open named the
// namespace; wrong ones close the connection.
func (a *amqpHandler) checkDeferredPlain(c *amqp.Conn, view *namespaceView) error {
	pc, ok := c.Value(plainKey{}).(*plainCredentials)
	if !ok {
		return nil
	}
	audience, rule, err := plainGrant(view, pc.user, pc.password)
	if err != nil {
		return wire.Errorf("amqp:unauthorized-access", "%v", err)
	}
	c.SetValue(plainKey{}, &plainDeferred{path: strings.TrimPrefix(audience, "/"), g: &grant{rule: &rule}})
	return nil
}

// plainDeferred is the grant of PLAIN credentials checked in open.
type plainDeferred struct {
	path string // "" for the namespace
	g    *grant
}

// covering is a grant that covers an entity, and the claim it came with
// ("" for one that never expires).
type covering struct {
	g     *grant
	claim string
}

// grantsFor returns the grants that cover any of paths (entity paths in
// the connection's namespace): claims put for the path or a path above
// it, and PLAIN's grant.
func (a *amqpHandler) grantsFor(c *amqp.Conn, view *namespaceView, paths ...string) []covering {
	var out []covering
	covers := func(scope string) bool {
		scope = strings.ToLower(strings.Trim(scope, "/"))
		for _, p := range paths {
			p = strings.ToLower(p)
			if scope == "" || p == scope || strings.HasPrefix(p, scope+"/") {
				return true
			}
		}
		return false
	}
	for _, cl := range c.Claims() {
		g, ok := cl.Principal.(*grant)
		if !ok {
			continue
		}
		host, path, _ := strings.Cut(cl.Audience, "/")
		if !eq(namespaceOf(host), view.name) || !covers(path) {
			continue
		}
		claim := cl.Audience
		if cl.Expires.IsZero() {
			claim = ""
		}
		out = append(out, covering{g: g, claim: claim})
	}
	if pd, ok := c.Value(plainKey{}).(*plainDeferred); ok && covers(pd.path) {
		out = append(out, covering{g: pd.g})
	}
	return out
}

// authorize checks that the connection may use e with right (rightSend,
// rightListen; "" for either, as attaching a $management node needs) and
// returns the claim the link lives by. It fails with amqp:unauthorized-
// access, saying what is missing.
func (a *amqpHandler) authorize(c *amqp.Conn, e amqpEntity, right string, management bool) (string, error) {
	paths := []string{e.path()}
	if management {
		paths = append(paths, e.path()+"/$management")
	}
	grants := a.grantsFor(c, e.ns, paths...)
	if len(grants) == 0 {
		return "", wire.Errorf("amqp:unauthorized-access",
			"Unauthorized access: no token covers '%s'. Put a token on $cbs for it first: a SAS token signed with an authorization rule's key, or a Microsoft Entra token for https://servicebus.azure.net.", e.resource())
	}
	var denial string
	for _, cv := range grants {
		if cv.g.rule != nil {
			if e.ns.disableLocalAuth {
				denial = "SAS authentication has been disabled for the namespace (disableLocalAuth is true)"
				continue
			}
			if right == "" || cv.g.rule.Has(right) {
				return a.admitLink(c, e, nil, cv.claim)
			}
			continue
		}
		actions := []string{actionSend, actionReceive}
		switch right {
		case rightSend:
			actions = actions[:1]
		case rightListen:
			actions = actions[1:]
		}
		for _, action := range actions {
			if err := a.h.cfg.Access.Authorize(*cv.g.caller, action, true, e.scope()); err == nil {
				return a.admitLink(c, e, cv.g.caller, cv.claim)
			} else if _, ok := access.IsDenial(err); !ok {
				return "", err
			}
		}
	}
	if denial == "" {
		shown := right
		if shown == "" {
			shown = "Send' or 'Listen"
		}
		denial = "'" + shown + "' claim(s) are required to perform this operation"
	}
	return "", wire.Errorf("amqp:unauthorized-access", "Unauthorized access. %s. Resource: '%s'.", denial, e.resource())
}

func (a *amqpHandler) admitLink(c *amqp.Conn, e amqpEntity, caller *access.Caller, claim string) (string, error) {
	if err := a.admit(e.ns, c, caller); err != nil {
		if strings.HasPrefix(err.Error(), "IpFilterDenied") {
			return "", wire.Errorf("amqp:unauthorized-access", "%v", err)
		}
		return "", err
	}
	return claim, nil
}
