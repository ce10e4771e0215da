package sbresource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// AuthorizationRules is a shared access policy at the namespace, queue or
// topic level. Keys are generated at creation, kept across PUTs, never
// returned by GET (listKeys has them) and replaced by regenerateKeys.
type AuthorizationRules struct {
	cfg Config
	typ string // "namespaces/authorizationRules", "namespaces/queues/authorizationRules", ...
}

var (
	_ arm.ResourceType = (*AuthorizationRules)(nil)
	_ arm.ActionType   = (*AuthorizationRules)(nil)
	_ arm.Renderer     = (*AuthorizationRules)(nil)
)

// keysMember holds the keys in the stored document, out of properties so
// Render can drop it whole.
const keysMember = "outpostKeys"

// AuthRule is a decoded shared access policy.
type AuthRule struct {
	Name         string
	Rights       []string
	PrimaryKey   string
	SecondaryKey string
}

// Has reports whether the rule grants right (Listen, Send, Manage); Manage
// implies the others, as in Service Bus.
func (r AuthRule) Has(right string) bool {
	for _, x := range r.Rights {
		if strings.EqualFold(x, right) || strings.EqualFold(x, "Manage") {
			return true
		}
	}
	return false
}

// DecodeAuthRule reads a stored rule.
func DecodeAuthRule(res store.Resource) AuthRule {
	var doc struct {
		Properties struct {
			Rights []string `json:"rights"`
		} `json:"properties"`
		Keys struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"outpostKeys"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	return AuthRule{Name: res.Name, Rights: doc.Properties.Rights, PrimaryKey: doc.Keys.PrimaryKey, SecondaryKey: doc.Keys.SecondaryKey}
}

// Info implements arm.ResourceType.
func (a *AuthorizationRules) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: a.typ, APIVersions: APIVersions(), CreateStatus: http.StatusOK, Actions: []string{"listKeys", "regenerateKeys"}}
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$`)

func newRuleDoc(random io.Reader, rights []string) (arm.Document, error) {
	p, err := newKey(random)
	if err != nil {
		return nil, err
	}
	s, err := newKey(random)
	if err != nil {
		return nil, err
	}
	doc := arm.Document{}
	doc.Set("properties", map[string]any{"rights": rights})
	doc.Set(keysMember, map[string]string{"primaryKey": p, "secondaryKey": s})
	return doc, nil
}

// Prepare implements arm.ResourceType.
func (a *AuthorizationRules) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if !ruleName.MatchString(name) {
		return nil, invalid("The authorization rule name '%s' is invalid: use 1-256 letters, digits, '.', '_' or '-', starting with a letter or digit.", name)
	}
	var props struct {
		Rights []string `json:"rights"`
	}
	if err := req.Body.Decode("properties", &props); err != nil {
		return nil, invalid("The authorization rule is invalid: %v.", err)
	}
	rights, err := canonicalRights(props.Rights)
	if err != nil {
		return nil, err
	}
	if req.Current != nil {
		cur := DecodeAuthRule(*req.Current)
		doc := arm.Document{}
		doc.Set("properties", map[string]any{"rights": rights})
		doc.Set(keysMember, map[string]string{"primaryKey": cur.PrimaryKey, "secondaryKey": cur.SecondaryKey})
		return doc, nil
	}
	return newRuleDoc(a.cfg.Random, rights)
}

func canonicalRights(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalid("An authorization rule needs at least one right in properties.rights: Listen, Send or Manage.")
	}
	seen := map[string]bool{}
	for _, r := range in {
		c := canonicalFold(r, "Listen", "Send", "Manage")
		if c != "Listen" && c != "Send" && c != "Manage" {
			return nil, invalid("The right '%s' is not supported; use Listen, Send and/or Manage.", r)
		}
		seen[c] = true
	}
	if seen["Manage"] && (!seen["Listen"] || !seen["Send"]) {
		return nil, invalid("The Manage right requires the Listen and Send rights as well; send [\"Listen\",\"Send\",\"Manage\"].")
	}
	var out []string
	for _, r := range []string{"Listen", "Manage", "Send"} {
		if seen[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Provision implements arm.ResourceType.
func (a *AuthorizationRules) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	a.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (a *AuthorizationRules) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		a.cfg.Runtime.Changed(id.Names[0])
	}
	return nil
}

// Render implements arm.Renderer: keys only through listKeys.
func (a *AuthorizationRules) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, keysMember)
	return doc.Bytes()
}

// Action implements arm.ActionType: listKeys and regenerateKeys.
func (a *AuthorizationRules) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return nil, fmt.Errorf("sbresource: rule id %s: %w", res.ID, err)
	}
	switch strings.ToLower(action) {
	case "listkeys":
		return a.keys(id, DecodeAuthRule(res)), nil
	case "regeneratekeys":
		var in struct {
			KeyType string `json:"keyType"`
			Key     string `json:"key"`
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &in); err != nil {
				return nil, invalid("Send {\"keyType\": \"PrimaryKey\" or \"SecondaryKey\"}: %v.", err)
			}
		}
		member := ""
		switch strings.ToLower(in.KeyType) {
		case "primarykey":
			member = "primaryKey"
		case "secondarykey":
			member = "secondaryKey"
		default:
			return nil, invalid("keyType '%s' is not supported; send {\"keyType\": \"PrimaryKey\"} or {\"keyType\": \"SecondaryKey\"}.", in.KeyType)
		}
		key := in.Key
		if key == "" {
			if key, err = newKey(a.cfg.Random); err != nil {
				return nil, err
			}
		} else if len(key) < 32 || len(key) > 256 {
			return nil, invalid("A supplied key must have 32 to 256 characters.")
		}
		updated, _, err := a.cfg.Resources.Put(ctx, res.ID, func(cur *store.Resource) (store.Resource, error) {
			if cur == nil {
				return store.Resource{}, arm.Errorf(http.StatusNotFound, "NotFound", "The authorization rule '%s' was deleted.", res.Name)
			}
			doc, err := arm.ParseDocument(cur.Body)
			if err != nil {
				return store.Resource{}, fmt.Errorf("sbresource: decode %s: %w", cur.ID, err)
			}
			keys := map[string]string{}
			_ = doc.Decode(keysMember, &keys)
			keys[member] = key
			doc.Set(keysMember, keys)
			next := *cur
			next.Body = doc.Bytes()
			return next, nil
		})
		if err != nil {
			return nil, err
		}
		a.cfg.Runtime.Changed(id.Names[0])
		return a.keys(id, DecodeAuthRule(updated)), nil
	}
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported", "The authorization rule has no operation '%s'.", action)
}

// keys is the listKeys answer, connection strings included.
func (a *AuthorizationRules) keys(id arm.ResourceID, r AuthRule) map[string]string {
	base := "Endpoint=sb://" + id.Names[0] + ".servicebus." + a.cfg.DNSSuffix + "/;SharedAccessKeyName=" + r.Name + ";SharedAccessKey="
	suffix := ""
	if len(id.Names) > 2 { // queue or topic level: the entity is part of the string
		suffix = ";EntityPath=" + id.Names[1]
	}
	return map[string]string{
		"primaryConnectionString":   base + r.PrimaryKey + suffix,
		"secondaryConnectionString": base + r.SecondaryKey + suffix,
		"primaryKey":                r.PrimaryKey,
		"secondaryKey":              r.SecondaryKey,
		"keyName":                   r.Name,
	}
}
