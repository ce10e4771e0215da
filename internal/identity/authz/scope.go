package authz

import "strings"

// trimScope puts a scope in the form the coverage test expects: a leading
// "/" and no trailing one, except for the root scope "/" itself. It only
// allocates when the leading "/" is missing.
func trimScope(s string) string {
	for len(s) > 1 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "/"
	}
	if s[0] != '/' {
		return "/" + s
	}
	return s
}

// scopeCovers reports whether an assignment at scope applies to target:
// scope is target or a whole-segment prefix of it, ignoring case. Both are
// trimmed (see trimScope).
func scopeCovers(scope, target string) bool {
	if scope == "/" {
		return true
	}
	if len(target) < len(scope) || (len(target) > len(scope) && target[len(scope)] != '/') {
		return false
	}
	return strings.EqualFold(target[:len(scope)], scope)
}

// scopeMatcher is an assignment scope prepared for scopeCovers' question
// on the hot path.
type scopeMatcher struct {
	scope string // trimmed, as given
	lower string // lower-cased, when scope is ASCII
	ascii bool
	none  bool // no scope given: covers nothing rather than everything
}

func newScopeMatcher(scope string) scopeMatcher {
	if strings.TrimSpace(scope) == "" {
		return scopeMatcher{none: true}
	}
	scope = trimScope(scope)
	m := scopeMatcher{scope: scope, ascii: isASCII(scope)}
	if m.ascii {
		m.lower = strings.ToLower(scope)
	}
	return m
}

// covers is scopeCovers(m.scope, target). An exact comparison comes first;
// the case-folding one runs backwards because sibling scopes share their
// beginning (/subscriptions/…/resourceGroups/) and differ near the end.
func (m *scopeMatcher) covers(target string) bool {
	if m.none {
		return false
	}
	if !m.ascii {
		return scopeCovers(m.scope, target)
	}
	s := m.lower
	if s == "/" {
		return true
	}
	if len(target) < len(s) || (len(target) > len(s) && target[len(s)] != '/') {
		return false
	}
	if target[:len(s)] == m.scope {
		return true // callers usually spell a scope the way it was assigned
	}
	for i := len(s) - 1; i >= 0; i-- {
		c := target[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
