package authz

import (
	"fmt"
	"slices"
	"strings"
)

// Denials are rare next to grants, so explaining one may allocate: it walks
// the principal's assignments again to say which exist where, why the
// roles held do not grant the operation, and which roles would.

const maxListed = 5

func (e *Evaluator) explain(principalID, action string, data bool, target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "principal %s has no role assignment granting %s '%s' at or above scope %s",
		principalID, operationKind(data), action, target)

	g := e.grantsFor(principalID)
	if g == nil || len(g.compiled) == 0 {
		b.WriteString("; it has no role assignments at all")
	} else {
		var held, elsewhere, notes []string
		for i := range g.compiled {
			a := &g.compiled[i]
			label := fmt.Sprintf("%s at %s", roleLabel(a), a.scope)
			if !scopeCovers(a.scope, target) {
				elsewhere = append(elsewhere, label)
				continue
			}
			held = append(held, label)
			if n := a.note(action, data); n != "" && !slices.Contains(notes, n) {
				notes = append(notes, n)
			}
		}
		if len(held) == 0 {
			fmt.Fprintf(&b, "; its role assignments are all at other scopes: %s", listed(elsewhere))
		} else {
			fmt.Fprintf(&b, "; the roles it holds there (%s) do not grant it", listed(held))
			for _, n := range notes {
				b.WriteString("; ")
				b.WriteString(n)
			}
		}
	}
	if s := e.suggest(action, data); len(s) > 0 {
		fmt.Fprintf(&b, "; roles that grant it: %s", strings.Join(s, ", "))
	}
	return b.String()
}

// note says why an assignment covering the scope does not grant the
// operation, when there is more to say than "not in the role".
func (a *compiledAssignment) note(action string, data bool) string {
	switch {
	case a.role == nil:
		return fmt.Sprintf("assignment %s refers to role definition %s, which does not exist", a.id, a.roleID)
	case data && a.conditioned:
		return fmt.Sprintf("assignment %s (%s) has a condition, which Outpost does not evaluate, so it grants no data actions",
			a.id, a.role.def.Name)
	}
	if entry := a.role.excludedBy(action, data); entry != "" {
		return fmt.Sprintf("%s excludes it through %s '%s' (a not-list only narrows its own role; another role can still grant it)",
			a.role.def.Name, notListName(data), entry)
	}
	if a.role.grants(action, !data) {
		if data {
			return fmt.Sprintf("%s grants '%s' only as a management action, and management permissions never grant data actions",
				a.role.def.Name, action)
		}
		return fmt.Sprintf("%s grants '%s' only as a data action, and data permissions never grant management actions",
			a.role.def.Name, action)
	}
	return ""
}

// excludedBy returns the not-list entry that removed op from a permission
// block whose allow-list matched it.
func (r *compiledRole) excludedBy(op string, data bool) string {
	for i := range r.perms {
		p := &r.perms[i]
		allow, deny := p.actions, p.notActions
		if data {
			allow, deny = p.dataActions, p.notDataActions
		}
		if !anyMatch(allow, op) {
			continue
		}
		for j := range deny {
			if deny[j].match(op) {
				return deny[j].raw
			}
		}
	}
	return ""
}

// suggest names up to three roles of the snapshot that grant op: the most
// specific grant first (a literal entry before "blobs/*" before "*/read"
// before "*"), then the smallest role, as least privilege would pick.
func (e *Evaluator) suggest(op string, data bool) []string {
	if e == nil {
		return nil
	}
	type candidate struct {
		name              string
		specificity, size int
	}
	var cs []candidate
	for _, r := range e.roleOrder {
		if !r.grants(op, data) {
			continue
		}
		c := candidate{name: r.def.Name, specificity: -1}
		for i := range r.perms {
			p := &r.perms[i]
			c.size += len(p.actions) + len(p.dataActions)
			entries := p.actions
			if data {
				entries = p.dataActions
			}
			for j := range entries {
				if entries[j].match(op) {
					c.specificity = max(c.specificity, entries[j].specificity())
				}
			}
		}
		cs = append(cs, c)
	}
	slices.SortStableFunc(cs, func(a, b candidate) int {
		if a.specificity != b.specificity {
			return b.specificity - a.specificity
		}
		return a.size - b.size
	})
	var names []string
	for i := 0; i < len(cs) && i < 3; i++ {
		names = append(names, fmt.Sprintf("%q", cs[i].name))
	}
	return names
}

// specificity ranks how narrowly an entry names operations: literals above
// any wildcard, then by the number of literal characters.
func (p *pattern) specificity() int {
	if p.kind == matchLiteral {
		return 1<<20 + len(p.raw)
	}
	return len(p.raw) - strings.Count(p.raw, "*")
}

func roleLabel(a *compiledAssignment) string {
	if a.role == nil {
		return "unknown role " + a.roleID
	}
	return fmt.Sprintf("%q", a.role.def.Name)
}

func operationKind(data bool) string {
	if data {
		return "data action"
	}
	return "action"
}

func notListName(data bool) string {
	if data {
		return "notDataActions"
	}
	return "notActions"
}

func listed(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}
