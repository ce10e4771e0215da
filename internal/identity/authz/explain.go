package authz

import (
	"slices"
	"strconv"
	"strings"
)

// Denials are rarer than grants but not rare enough to be slow (a client
// retrying with the wrong role hammers them), so the reason is written
// straight into one builder: which assignments exist where, why the roles
// held at the scope do not grant the operation, and which roles would.

const maxListed = 5

// explain writes the denial reason; g and covered are what Authorize found:
// the principal's grants and which of them cover target.
func (e *Evaluator) explain(principalID, action string, data bool, target string, g *principalGrants, covered []bool) string {
	ascii := isASCII(action)
	var b strings.Builder
	b.Grow(320 + 2*len(target) + len(action))
	b.WriteString("principal ")
	b.WriteString(principalID)
	b.WriteString(" has no role assignment granting ")
	b.WriteString(operationKind(data))
	b.WriteString(" '")
	b.WriteString(action)
	b.WriteString("' at or above scope ")
	b.WriteString(target)

	if g == nil || len(g.compiled) == 0 {
		b.WriteString("; it has no role assignments at all")
	} else {
		held := 0
		for _, c := range covered {
			if c {
				held++
			}
		}
		if held == 0 {
			b.WriteString("; its role assignments are all at other scopes: ")
			writeAssignments(&b, g.compiled, covered, false)
		} else {
			b.WriteString("; the roles it holds there (")
			writeAssignments(&b, g.compiled, covered, true)
			b.WriteString(") do not grant it")
			var notes []string
			for i := range g.compiled {
				if !covered[i] {
					continue
				}
				if n := g.compiled[i].note(action, ascii, data); n != "" && !slices.Contains(notes, n) {
					notes = append(notes, n)
					b.WriteString("; ")
					b.WriteString(n)
				}
			}
		}
	}
	if s := e.suggest(action, ascii, data); len(s) > 0 {
		b.WriteString("; roles that grant it: ")
		for i, name := range s {
			if i > 0 {
				b.WriteString(", ")
			}
			writeQuoted(&b, name)
		}
	}
	return b.String()
}

// writeAssignments lists the assignments whose covered flag is want as
// `"Role" at scope`, at most maxListed of them.
func writeAssignments(b *strings.Builder, as []compiledAssignment, covered []bool, want bool) {
	n := 0
	for i := range as {
		a := &as[i]
		if covered[i] != want {
			continue
		}
		if n < maxListed {
			if n > 0 {
				b.WriteString(", ")
			}
			if a.role == nil {
				b.WriteString("unknown role ")
				b.WriteString(a.roleID)
			} else {
				writeQuoted(b, a.role.def.Name)
			}
			if a.scope.none {
				b.WriteString(" without a scope")
			} else {
				b.WriteString(" at ")
				b.WriteString(a.scope.scope)
			}
		}
		n++
	}
	if n > maxListed {
		b.WriteString(" and ")
		b.WriteString(strconv.Itoa(n - maxListed))
		b.WriteString(" more")
	}
}

// note says why an assignment covering the scope does not grant the
// operation, when there is more to say than "not in the role".
func (a *compiledAssignment) note(action string, ascii, data bool) string {
	switch {
	case a.role == nil:
		return "assignment " + a.id + " refers to role definition " + a.roleID + ", which does not exist"
	case data && a.conditioned:
		return "assignment " + a.id + " (" + a.role.def.Name + ") has a condition, which Outpost does not evaluate, so it grants no data actions"
	}
	if entry := a.role.excludedBy(action, ascii, data); entry != "" {
		return a.role.def.Name + " excludes it through " + notListName(data) + " '" + entry +
			"' (a not-list only narrows its own role; another role can still grant it)"
	}
	if a.role.grants(action, ascii, !data) {
		if data {
			return a.role.def.Name + " grants '" + action + "' only as a management action, and management permissions never grant data actions"
		}
		return a.role.def.Name + " grants '" + action + "' only as a data action, and data permissions never grant management actions"
	}
	return ""
}

// excludedBy returns the not-list entry that removed op from a permission
// block whose allow-list matched it.
func (r *compiledRole) excludedBy(op string, ascii, data bool) string {
	for i := range r.perms {
		allow, deny := r.perms[i].lists(data)
		if !anyMatch(allow, op, ascii) {
			continue
		}
		for j := range deny {
			if deny[j].match(op, ascii) {
				return deny[j].raw
			}
		}
	}
	return ""
}

// suggest names up to three roles of the snapshot that grant op: the most
// specific grant first (a literal entry before "blobs/*" before "*/read"
// before "*"), then the smallest role, as least privilege would pick.
// Answers are memoized per operation; servers ask about a few hundred
// distinct operations at most, and the memo stops growing at maxSuggestions.
func (e *Evaluator) suggest(op string, ascii, data bool) []string {
	if e == nil {
		return nil
	}
	memo := &e.suggestions[0]
	if data {
		memo = &e.suggestions[1]
	}
	if v, ok := memo.Load(op); ok {
		return v.([]string)
	}
	names := e.rankGrantingRoles(op, ascii, data)
	if e.suggested.Add(1) <= maxSuggestions {
		memo.Store(op, names)
	}
	return names
}

const maxSuggestions = 4096

func (e *Evaluator) rankGrantingRoles(op string, ascii, data bool) []string {
	type candidate struct {
		name              string
		specificity, size int
	}
	var cs []candidate
	for _, r := range e.roleOrder {
		if !r.grants(op, ascii, data) {
			continue
		}
		c := candidate{name: r.def.Name, specificity: -1}
		for i := range r.perms {
			p := &r.perms[i]
			c.size += len(p.actions) + len(p.dataActions)
			allow, _ := p.lists(data)
			for j := range allow {
				if allow[j].match(op, ascii) {
					c.specificity = max(c.specificity, allow[j].specificity())
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
	names := make([]string, 0, 3)
	for i := 0; i < len(cs) && i < 3; i++ {
		names = append(names, cs[i].name)
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

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
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
