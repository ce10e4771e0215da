package ehresource

import (
	"strings"
	"testing"
)

func TestNameProblem(t *testing.T) {
	for name, valid := range map[string]bool{
		"abcdef": true, "my-namespace-01": true, "A12345": true,
		"abcde": false, "1abcdef": false, "abcdef-": false, "abc_def": false, "abcdef-sb": false, "abcdef-MGMT": false,
		"a" + strings.Repeat("b", 50): false, // 51 characters
	} {
		if got := NameProblem(name) == ""; got != valid {
			t.Errorf("NameProblem(%q) valid = %v, want %v (%s)", name, got, valid, NameProblem(name))
		}
	}
}

func TestNormalizeRights(t *testing.T) {
	got, err := normalizeRights([]string{"send", "LISTEN", "Manage", "Send"})
	if err != nil || len(got) != 3 || got[0] != RightListen || got[1] != RightManage || got[2] != RightSend {
		t.Errorf("normalizeRights = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"Manage"}, {"Manage", "Send"}, {"Read"}} {
		if _, err := normalizeRights(bad); err == nil {
			t.Errorf("normalizeRights(%v) accepted", bad)
		}
	}
}
