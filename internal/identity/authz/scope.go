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
	if len(target) < len(scope) || !strings.EqualFold(target[:len(scope)], scope) {
		return false
	}
	return len(target) == len(scope) || target[len(scope)] == '/'
}
