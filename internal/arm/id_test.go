package arm

import (
	"reflect"
	"testing"
)

func TestParseResourceID(t *testing.T) {
	cases := []struct {
		in         string
		want       ResourceID
		str        string
		parent     string
		collection bool
	}{
		{
			in:     "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1",
			want:   ResourceID{Subscription: "s1", ResourceGroup: "rg", Namespace: "Microsoft.Devices", Types: []string{"IotHubs"}, Names: []string{"hub1"}},
			str:    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1",
			parent: "/subscriptions/s1/resourceGroups/rg",
		},
		{
			in:     "//subscriptions/s1/resourcegroups/rg/providers/Microsoft.Devices//IotHubs/hub1/",
			want:   ResourceID{Subscription: "s1", ResourceGroup: "rg", Namespace: "Microsoft.Devices", Types: []string{"IotHubs"}, Names: []string{"hub1"}},
			str:    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1",
			parent: "/subscriptions/s1/resourceGroups/rg",
		},
		{
			in:     "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/ns/eventhubs/eh",
			want:   ResourceID{Subscription: "s1", ResourceGroup: "rg", Namespace: "Microsoft.EventHub", Types: []string{"namespaces", "eventhubs"}, Names: []string{"ns", "eh"}},
			str:    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/ns/eventhubs/eh",
			parent: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/ns",
		},
		{
			in:         "/subscriptions/s1/providers/Microsoft.Devices/IotHubs",
			want:       ResourceID{Subscription: "s1", Namespace: "Microsoft.Devices", Types: []string{"IotHubs"}},
			str:        "/subscriptions/s1/providers/Microsoft.Devices/IotHubs",
			parent:     "/subscriptions/s1",
			collection: true,
		},
		{
			in: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/providers/Microsoft.Authorization/roleAssignments/g1",
			want: ResourceID{Subscription: "s1", ResourceGroup: "rg", Scope: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
				Namespace: "Microsoft.Authorization", Types: []string{"roleAssignments"}, Names: []string{"g1"}},
			str:    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/providers/Microsoft.Authorization/roleAssignments/g1",
			parent: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
		},
		{
			in:     "/providers/Microsoft.Authorization/roleDefinitions/r1",
			want:   ResourceID{Namespace: "Microsoft.Authorization", Types: []string{"roleDefinitions"}, Names: []string{"r1"}},
			str:    "/providers/Microsoft.Authorization/roleDefinitions/r1",
			parent: "",
		},
	}
	for _, tc := range cases {
		got, err := ParseResourceID(tc.in)
		if err != nil {
			t.Errorf("ParseResourceID(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseResourceID(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("String() = %q, want %q", got.String(), tc.str)
		}
		if got.ParentID() != tc.parent {
			t.Errorf("ParentID() = %q, want %q", got.ParentID(), tc.parent)
		}
		if got.IsCollection() != tc.collection {
			t.Errorf("IsCollection() = %v for %q", got.IsCollection(), tc.in)
		}
	}
	for _, bad := range []string{"/subscriptions/s1", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.X", "/a/b/providers/Microsoft.X/t/n"} {
		if _, err := ParseResourceID(bad); err == nil {
			t.Errorf("ParseResourceID(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseIfMatch(t *testing.T) {
	for in, want := range map[string]string{
		`"abc"`:                 "abc",
		`W/"abc"`:               "abc",
		`abc`:                   "abc",
		`{'IF-MATCH': 'AAAA='}`: "AAAA=",
		`{'IF-MATCH': '"abc"'}`: "abc",
	} {
		if got := parseIfMatch(in); got != want {
			t.Errorf("parseIfMatch(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseResourceID(f *testing.F) {
	f.Add("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/h")
	f.Add("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/providers/Microsoft.Authorization/roleAssignments/g")
	f.Add("//providers//x")
	f.Fuzz(func(t *testing.T, in string) {
		id, err := ParseResourceID(in)
		if err != nil {
			return
		}
		// A parsed id renders to a path that parses to the same id.
		again, err := ParseResourceID(id.String())
		if err != nil {
			t.Fatalf("re-parse %q (from %q): %v", id.String(), in, err)
		}
		if again.String() != id.String() {
			t.Fatalf("round trip %q -> %q", id.String(), again.String())
		}
	})
}
