package hubresource

import (
	"bytes"
	"testing"
)

func TestCanonicalRights(t *testing.T) {
	for in, want := range map[string]string{
		"DeviceConnect,registryread":                    "RegistryRead, DeviceConnect",
		"ServiceConnect, RegistryWrite, ServiceConnect": "RegistryWrite, ServiceConnect",
	} {
		if got, err := canonicalRights(in); err != nil || got != want {
			t.Errorf("canonicalRights(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := canonicalRights("RegistryRead, Admin"); err == nil {
		t.Error("canonicalRights accepted Admin")
	}
}

func TestPreparePoliciesDefaults(t *testing.T) {
	ps, err := preparePolicies(nil, false, nil, bytes.NewReader(bytes.Repeat([]byte{7}, 1024)))
	if err != nil || len(ps) != 5 || ps[0].PrimaryKey == "" || ps[0].PrimaryKey != ps[1].PrimaryKey {
		// A constant reader gives equal keys: proves keys come from Random.
		t.Fatalf("defaults = %+v, %v", ps, err)
	}
}

func FuzzNameProblem(f *testing.F) {
	for _, s := range []string{"hub", "-a", "123", "a-b-c", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ok := nameProblem(name) == ""
		want := len(name) >= 3 && len(name) <= 50 && name[0] != '-' && name[len(name)-1] != '-'
		digits := true
		for _, r := range name {
			valid := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
			want = want && valid
			digits = digits && r >= '0' && r <= '9'
		}
		if want && digits {
			want = false
		}
		if ok != want {
			t.Errorf("nameProblem(%q) ok=%v, want %v", name, ok, want)
		}
	})
}
