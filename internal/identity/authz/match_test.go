package authz

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, op string
		want        bool
	}{
		{"*", "Microsoft.Storage/storageAccounts/write", true},
		{"*", "", true},
		{"**", "anything/at/all", true},
		{"*/read", "Microsoft.Storage/storageAccounts/read", true},
		{"*/read", "Microsoft.Storage/storageAccounts/write", false},
		{"*/read", "Microsoft.Storage/storageAccounts/readers/write", false},
		{"Microsoft.Storage/*", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", true},
		{"Microsoft.Storage/*", "Microsoft.StorageSync/storageSyncServices/read", false},
		{"Microsoft.Storage/*", "Microsoft.Storage", false},
		{"Microsoft.Storage/*/read", "Microsoft.Storage/storageAccounts/blobServices/containers/read", true},
		{"Microsoft.Storage/*/read", "Microsoft.Storage/storageAccounts/write", false},
		{"Microsoft.EventHub/*/send/action", "Microsoft.EventHub/namespaces/messages/send/action", true},
		{"Microsoft.EventHub/*/send/action", "Microsoft.EventHub/namespaces/messages/receive/action", false},
		{"Microsoft.EventHub/*/send/action", "Microsoft.ServiceBus/namespaces/messages/send/action", false},
		// A whole-segment star also stands for no segment.
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", true},
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/read", "Microsoft.ManagedIdentity/userAssignedIdentities/read", true},
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/read", "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read", true},
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/read", "Microsoft.ManagedIdentity/userAssignedIdentitiesread", false},
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/read", "Microsoft.ManagedIdentity/userAssignedIdentities/xread", false},
		{"a/*/*/b", "a/b", true},
		{"a/*/*/b", "a/x/y/z/b", true},
		{"a/*b", "a/b", true},
		{"a/*b", "a/xb", true},
		{"a*/b", "a/b", true},
		// Partial-segment stars are plain.
		{"Microsoft.Storage/storageAccounts/list*/action", "Microsoft.Storage/storageAccounts/listKeys/action", true},
		{"Microsoft.Storage/storageAccounts/list*/action", "Microsoft.Storage/storageAccounts/regenerateKey/action", false},
		{"Microsoft.CostManagement/*/query/*", "Microsoft.CostManagement/query/read", true},
		{"Microsoft.CostManagement/*/query/*", "Microsoft.CostManagement/x/query/action", true},
		{"Microsoft.CostManagement/*/query/*", "Microsoft.CostManagement/x/export/action", false},
		// Case.
		{"microsoft.storage/*/READ", "Microsoft.Storage/storageAccounts/read", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Storage/storageAccounts/read", "MICROSOFT.STORAGE/STORAGEACCOUNTS/READ", true},
		{"Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/read/", false},
		{"Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts", false},
		{"", "", true},
		{"", "x", false},
		// Overlapping prefix and suffix.
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"ab*ba", "aba", false},
		// Unicode folding (Kelvin sign folds to k).
		{"\u212a*", "k/anything", true},
		{"*\u212a", "KK", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.op); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.op, got, tt.want)
		}
	}
}

// referenceRegexp is an independent statement of the matching rules for
// FuzzMatch: "*" is (?s).*, a whole-segment "/*/" is /(?:.*/)?, case folds.
func referenceRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?is)^`)
	for i := 0; i < len(pattern); {
		if pattern[i] != '*' {
			_, w := utf8.DecodeRuneInString(pattern[i:])
			b.WriteString(regexp.QuoteMeta(pattern[i : i+w]))
			i += w
			continue
		}
		j := i
		for j < len(pattern) && pattern[j] == '*' {
			j++
		}
		if i > 0 && pattern[i-1] == '/' && j < len(pattern) && pattern[j] == '/' {
			b.WriteString(`(?:.*/)?`)
			j++
		} else {
			b.WriteString(`.*`)
		}
		i = j
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"*", "Microsoft.Storage/storageAccounts/read"},
		{"*/read", "Microsoft.Storage/storageAccounts/read"},
		{"Microsoft.Storage/*/read", "microsoft.storage/storageaccounts/READ"},
		{"Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"},
		{"Microsoft.EventHub/*/send/action", "Microsoft.EventHub/namespaces/messages/send/action"},
		{"a/*/*/b", "a/x/b"},
		{"a*b*c", "abcbc"},
		{"/*/", "//"},
		{"\u212a/*", "k/x"},
		{"\xff*", "\xfe"},
		{"Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/read"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, op string) {
		if len(pattern) > 512 || len(op) > 512 {
			t.Skip("operation strings are short; long inputs only slow minimization down")
		}
		got := Match(pattern, op)
		if strings.Trim(pattern, "*") == "" && pattern != "" && !got {
			t.Fatalf("Match(%q, %q) = false; a pattern of stars matches everything", pattern, op)
		}
		if !strings.Contains(pattern, "*") {
			if want := strings.EqualFold(pattern, op); got != want {
				t.Fatalf("Match(%q, %q) = %v; literal patterns must agree with strings.EqualFold (%v)", pattern, op, got, want)
			}
		}
		if !Match(pattern, pattern) {
			t.Fatalf("Match(%q, itself) = false", pattern)
		}
		if utf8.ValidString(pattern) && utf8.ValidString(op) {
			if want := referenceRegexp(pattern).MatchString(op); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference regexp says %v", pattern, op, got, want)
			}
		}
	})
}
