package ehresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// Rights a SAS rule can grant.
const (
	RightListen = "Listen"
	RightSend   = "Send"
	RightManage = "Manage"
)

// AuthorizationRules is namespaces/authorizationRules or, with entity set,
// namespaces/eventhubs/authorizationRules.
type AuthorizationRules struct {
	p      *Provider
	typ    string
	entity bool
}

var (
	_ arm.ResourceType = (*AuthorizationRules)(nil)
	_ arm.ActionType   = (*AuthorizationRules)(nil)
	_ arm.Renderer     = (*AuthorizationRules)(nil)
)

// Info implements arm.ResourceType.
func (a *AuthorizationRules) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: ProviderNamespace, Type: a.typ, APIVersions: APIVersions(),
		Actions:      []string{"listKeys", "regenerateKeys"},
		CreateStatus: http.StatusOK,
	}
}

// ruleKeys is the private member of a stored rule holding its keys.
type ruleKeys struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

const keysMember = "keys"

// ruleName: 1-256 letters, digits, '.', '-' and '_', starting and ending
// with a letter or digit.
var ruleName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$`)

// normalizeRights validates rights: any of Listen, Send, Manage (any case,
// duplicates dropped), at least one, and Manage only with Listen and Send.
func normalizeRights(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalid("properties.rights is required: a list of one or more of Listen, Send and Manage.")
	}
	has := map[string]bool{}
	for _, r := range in {
		switch {
		case strings.EqualFold(r, RightListen):
			has[RightListen] = true
		case strings.EqualFold(r, RightSend):
			has[RightSend] = true
		case strings.EqualFold(r, RightManage):
			has[RightManage] = true
		default:
			return nil, invalid("The right '%s' is not valid. Rights are Listen, Send and Manage.", r)
		}
	}
	if has[RightManage] && !(has[RightListen] && has[RightSend]) {
		return nil, invalid("A rule with the Manage right must also have Listen and Send: use [\"Listen\", \"Send\", \"Manage\"].")
	}
	var out []string
	for _, r := range []string{RightListen, RightManage, RightSend} {
		if has[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Prepare implements arm.ResourceType: rights validated, keys generated on
// create and kept on update.
func (a *AuthorizationRules) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if !ruleName.MatchString(name) {
		return nil, invalid("The authorization rule name '%s' is invalid: use 1-256 letters, numbers, periods, hyphens and underscores, starting and ending with a letter or number.", name)
	}
	var body struct {
		Properties struct {
			Rights []string `json:"rights"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(req.Body.Bytes(), &body); err != nil {
		return nil, invalid("The rule body must be {\"properties\": {\"rights\": [\"Listen\", \"Send\"]}}: %v.", err)
	}
	rights, err := normalizeRights(body.Properties.Rights)
	if err != nil {
		return nil, err
	}
	keys := ruleKeys{}
	if cur, err := currentDoc(req); err != nil {
		return nil, err
	} else if cur != nil {
		_ = cur.Decode(keysMember, &keys)
	}
	if keys.PrimaryKey == "" {
		if keys.PrimaryKey, err = a.p.newKey(); err != nil {
			return nil, err
		}
	}
	if keys.SecondaryKey == "" {
		if keys.SecondaryKey, err = a.p.newKey(); err != nil {
			return nil, err
		}
	}
	doc := arm.Document{}
	doc.Set("properties", map[string]any{"rights": rights})
	doc.Set(keysMember, keys)
	return doc, nil
}

// Provision implements arm.ResourceType.
func (a *AuthorizationRules) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	a.p.cfg.Changed(namespaceOf(id))
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (a *AuthorizationRules) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		a.p.cfg.Changed(namespaceOf(id))
	}
	return nil
}

// Render implements arm.Renderer: keys never leave through GET, PUT or list.
func (a *AuthorizationRules) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, keysMember)
	return doc.Bytes()
}

// AccessKeys is the answer of listKeys and regenerateKeys.
type AccessKeys struct {
	PrimaryConnectionString   string `json:"primaryConnectionString"`
	SecondaryConnectionString string `json:"secondaryConnectionString"`
	PrimaryKey                string `json:"primaryKey"`
	SecondaryKey              string `json:"secondaryKey"`
	KeyName                   string `json:"keyName"`
}

// ConnectionString is what Azure hands out for a rule's key.
func ConnectionString(namespace, dnsSuffix, keyName, key, entityPath string) string {
	s := "Endpoint=sb://" + Host(namespace, dnsSuffix) + "/;SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key
	if entityPath != "" {
		s += ";EntityPath=" + entityPath
	}
	return s
}

func (a *AuthorizationRules) accessKeys(res store.Resource) (AccessKeys, error) {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return AccessKeys{}, fmt.Errorf("ehresource: rule id %s: %w", res.ID, err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return AccessKeys{}, fmt.Errorf("ehresource: decode rule %s: %w", res.ID, err)
	}
	var k ruleKeys
	if err := doc.Decode(keysMember, &k); err != nil {
		return AccessKeys{}, fmt.Errorf("ehresource: decode rule %s: %w", res.ID, err)
	}
	entity := ""
	if a.entity && len(id.Names) >= 2 {
		entity = id.Names[1]
	}
	ns, name := namespaceOf(id), id.Name()
	return AccessKeys{
		PrimaryConnectionString:   ConnectionString(ns, a.p.cfg.DNSSuffix, name, k.PrimaryKey, entity),
		SecondaryConnectionString: ConnectionString(ns, a.p.cfg.DNSSuffix, name, k.SecondaryKey, entity),
		PrimaryKey:                k.PrimaryKey, SecondaryKey: k.SecondaryKey, KeyName: name,
	}, nil
}

// Action implements arm.ActionType: listKeys and regenerateKeys.
func (a *AuthorizationRules) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	switch strings.ToLower(action) {
	case "listkeys":
		return a.accessKeys(res)
	case "regeneratekeys":
		return a.regenerate(ctx, res, body)
	}
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"An authorization rule has no operation '%s'; use listKeys or regenerateKeys.", action)
}

// regenerate replaces the primary or secondary key, with a fresh one or the
// one the caller gives.
func (a *AuthorizationRules) regenerate(ctx context.Context, res store.Resource, body json.RawMessage) (any, error) {
	var in struct {
		KeyType string `json:"keyType"`
		Key     string `json:"key"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("The body must be {\"keyType\": \"PrimaryKey\" | \"SecondaryKey\"}: %v.", err)
	}
	primary := strings.EqualFold(in.KeyType, "PrimaryKey")
	if !primary && !strings.EqualFold(in.KeyType, "SecondaryKey") {
		return nil, invalid("keyType '%s' is not valid; use PrimaryKey or SecondaryKey.", in.KeyType)
	}
	key := in.Key
	if key == "" {
		var err error
		if key, err = a.p.newKey(); err != nil {
			return nil, err
		}
	} else if len(key) < 32 || len(key) > 256 {
		return nil, invalid("A supplied key must be 32 to 256 characters long.")
	}
	out, _, err := a.p.cfg.Resources.Put(ctx, res.ID, func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, store.ErrNotFound
		}
		doc, err := arm.ParseDocument(cur.Body)
		if err != nil {
			return store.Resource{}, fmt.Errorf("decode rule: %w", err)
		}
		var k ruleKeys
		_ = doc.Decode(keysMember, &k)
		if primary {
			k.PrimaryKey = key
		} else {
			k.SecondaryKey = key
		}
		doc.Set(keysMember, k)
		next := *cur
		next.Body = doc.Bytes()
		return next, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.Errorf(http.StatusNotFound, "NotFound", "The authorization rule '%s' no longer exists.", res.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("ehresource: regenerate keys of %s: %w", res.ID, err)
	}
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		a.p.cfg.Changed(namespaceOf(id))
	}
	return a.accessKeys(out)
}

// ensureRootRule creates RootManageSharedAccessKey (Listen, Manage, Send)
// for a namespace unless it exists. Idempotent: a re-run keeps its keys.
func (p *Provider) ensureRootRule(ctx context.Context, nsID arm.ResourceID) error {
	id := nsID.String() + "/authorizationRules/" + RootRuleName
	if _, err := p.cfg.Resources.Get(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ehresource: get root rule: %w", err)
	}
	primary, err := p.newKey()
	if err != nil {
		return err
	}
	secondary, err := p.newKey()
	if err != nil {
		return err
	}
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return fmt.Errorf("ehresource: root rule id: %w", err)
	}
	doc := arm.Document{}
	doc.Set("id", rid.String())
	doc.Set("name", RootRuleName)
	doc.Set("type", TypeNamespaceRule)
	doc.Set("properties", map[string]any{"rights": []string{RightListen, RightManage, RightSend}})
	doc.Set(keysMember, ruleKeys{PrimaryKey: primary, SecondaryKey: secondary})
	rec := store.Resource{
		ID: rid.String(), Type: TypeNamespaceRule, Subscription: rid.Subscription, ResourceGroup: rid.ResourceGroup,
		ParentID: rid.ParentID(), Name: RootRuleName, Body: doc.Bytes(),
	}
	_, _, err = p.cfg.Resources.Put(ctx, rec.ID, func(cur *store.Resource) (store.Resource, error) {
		if cur != nil {
			return *cur, nil // made meanwhile: keep its keys
		}
		return rec, nil
	})
	if err != nil {
		return fmt.Errorf("ehresource: create root rule: %w", err)
	}
	return nil
}
