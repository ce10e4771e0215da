package arm

import (
	"fmt"
	"strings"
)

// ResourceID is a parsed provider resource id such as
// /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.EventHub/namespaces/{ns}/eventhubs/{eh}.
// For an extension resource (a role assignment on a storage account) Scope
// is the id of the resource it extends. For a collection path (a list), Names
// has one element fewer than Types.
type ResourceID struct {
	Subscription  string
	ResourceGroup string
	// Scope is set only for extension resources: the id before the last
	// "/providers/" segment when that id is itself a provider resource.
	Scope     string
	Namespace string
	Types     []string
	Names     []string
}

// CleanPath collapses repeated slashes and drops a trailing slash; az sends
// "Microsoft.Devices//IotHubs" when it builds a path from a provider lookup.
func CleanPath(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	prevSlash := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			if prevSlash {
				continue
			}
			prevSlash = true
		} else {
			prevSlash = false
		}
		b.WriteByte(c)
	}
	s := b.String()
	if len(s) > 1 {
		s = strings.TrimSuffix(s, "/")
	}
	return s
}

// Segments splits a cleaned path into its segments.
func Segments(p string) []string {
	p = strings.Trim(CleanPath(p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// ParseResourceID parses a provider resource id or collection path. It
// accepts any letter case for the fixed words and keeps the caller's case for
// names.
func ParseResourceID(path string) (ResourceID, error) {
	seg := Segments(path)
	// The last "providers" segment starts the resource's own part; anything
	// before it that is itself a provider resource makes this an extension.
	last := -1
	for i := len(seg) - 2; i >= 0; i-- {
		if strings.EqualFold(seg[i], "providers") {
			last = i
			break
		}
	}
	if last < 0 {
		return ResourceID{}, fmt.Errorf("%q has no providers segment", path)
	}
	var id ResourceID
	prefix := seg[:last]
	if len(prefix) >= 2 && strings.EqualFold(prefix[0], "subscriptions") {
		id.Subscription = prefix[1]
		if len(prefix) >= 4 && strings.EqualFold(prefix[2], "resourcegroups") {
			id.ResourceGroup = prefix[3]
		}
	}
	switch {
	case len(prefix) == 0, len(prefix) == 2 && id.Subscription != "", len(prefix) == 4 && id.ResourceGroup != "":
	default:
		scope, err := ParseResourceID("/" + strings.Join(prefix, "/"))
		if err != nil || len(scope.Names) != len(scope.Types) {
			return ResourceID{}, fmt.Errorf("%q: scope %q is not a resource", path, "/"+strings.Join(prefix, "/"))
		}
		id.Scope = "/" + strings.Join(prefix, "/")
	}
	rest := seg[last+1:]
	if len(rest) < 2 {
		return ResourceID{}, fmt.Errorf("%q names no resource type", path)
	}
	id.Namespace = rest[0]
	for i := 1; i < len(rest); i += 2 {
		id.Types = append(id.Types, rest[i])
		if i+1 < len(rest) {
			id.Names = append(id.Names, rest[i+1])
		}
	}
	return id, nil
}

// IsCollection reports whether the id names a list rather than one resource.
func (id ResourceID) IsCollection() bool { return len(id.Names) < len(id.Types) }

// FullType is "Namespace/type[/childType…]", e.g. "Microsoft.EventHub/namespaces/eventhubs".
func (id ResourceID) FullType() string {
	return id.Namespace + "/" + strings.Join(id.Types, "/")
}

// Name is the last name in the id ("" for a collection).
func (id ResourceID) Name() string {
	if id.IsCollection() || len(id.Names) == 0 {
		return ""
	}
	return id.Names[len(id.Names)-1]
}

// ScopeID is the id of what the resource lives in: the extended resource,
// the resource group, the subscription or "" (tenant).
func (id ResourceID) ScopeID() string {
	switch {
	case id.Scope != "":
		return id.Scope
	case id.ResourceGroup != "":
		return GroupID(id.Subscription, id.ResourceGroup)
	case id.Subscription != "":
		return SubscriptionID(id.Subscription)
	}
	return ""
}

// String renders the id in ARM's canonical form.
func (id ResourceID) String() string {
	var b strings.Builder
	b.WriteString(id.ScopeID())
	b.WriteString("/providers/")
	b.WriteString(id.Namespace)
	for i, t := range id.Types {
		b.WriteByte('/')
		b.WriteString(t)
		if i < len(id.Names) {
			b.WriteByte('/')
			b.WriteString(id.Names[i])
		}
	}
	return b.String()
}

// ParentID is the id of the enclosing object: the parent resource of a child
// resource, otherwise the scope.
func (id ResourceID) ParentID() string {
	if len(id.Types) > 1 {
		parent := id
		parent.Types = id.Types[:len(id.Types)-1]
		parent.Names = id.Names[:len(id.Types)-1]
		return parent.String()
	}
	return id.ScopeID()
}

// Collection returns the list path the resource belongs to.
func (id ResourceID) Collection() ResourceID {
	c := id
	c.Names = id.Names[:len(id.Types)-1]
	return c
}

// SubscriptionID returns "/subscriptions/{s}".
func SubscriptionID(sub string) string { return "/subscriptions/" + sub }

// GroupID returns "/subscriptions/{s}/resourceGroups/{rg}".
func GroupID(sub, group string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + group
}
