package access

import (
	"net/netip"
	"strings"
	"testing"
)

const (
	hubID  = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1"
	uamiID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
)

func TestTrustedServiceIsOnlyAHubsSystemAssignedIdentity(t *testing.T) {
	for _, tc := range []struct {
		mirid string
		want  bool
	}{
		{hubID, true},
		{strings.ToUpper(hubID), true},
		{hubID + "/", true},
		{uamiID, false},
		{"", false},
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a", false},
		{hubID + "/certificates/c", false},
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/", false},
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/provisioningServices/dps", false},
	} {
		if got := (Caller{ManagedIdentityResourceID: tc.mirid}).TrustedService(); got != tc.want {
			t.Errorf("TrustedService(%q) = %v, want %v", tc.mirid, got, tc.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	hub := &Caller{PrincipalID: "p-hub", ManagedIdentityResourceID: hubID}
	uami := &Caller{PrincipalID: "p-uami", ManagedIdentityResourceID: uamiID}
	sp := &Caller{PrincipalID: "p-sp"}
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	closed := Network{PublicNetworkAccess: "Disabled", TrustedServices: true, Resource: "storage account 'acct'"}
	deny := Network{DefaultAction: "Deny", IPRules: []string{"127.0.0.2", "127.0.1.0/24", "not-an-ip"}, TrustedServices: true}
	for _, tc := range []struct {
		name   string
		n      Network
		ip     string
		caller *Caller
		want   bool
		reason string
	}{
		{"open by default", Network{}, "127.0.0.9", nil, true, "Allow"},
		{"disabled admits hub SAMI", closed, "127.0.0.9", hub, true, "trusted service"},
		{"disabled refuses UAMI", closed, "127.0.0.9", uami, false, "user-assigned identity needs public network access"},
		{"disabled refuses SP", closed, "127.0.0.9", sp, false, "not a managed identity"},
		{"disabled refuses key", closed, "127.0.0.9", nil, false, "key or SAS"},
		{"disabled without bypass refuses hub", Network{PublicNetworkAccess: "Disabled"}, "127.0.0.9", hub, false, "not allowed to bypass"},
		{"perimeter is disabled", Network{PublicNetworkAccess: "SecuredByPerimeter"}, "127.0.0.2", nil, false, "disabled"},
		{"ip rule exact", deny, "127.0.0.2", nil, true, "matches IP rule 127.0.0.2"},
		{"ip rule mapped", deny, "::ffff:127.0.0.2", nil, true, "matches"},
		{"ip rule cidr", deny, "127.0.1.77", sp, true, "127.0.1.0/24"},
		{"ip rule miss", deny, "127.0.0.3", sp, false, "deny client address 127.0.0.3"},
		{"ip miss hub bypass", deny, "127.0.0.3", hub, true, "trusted service"},
		{"ip miss uami", deny, "127.0.0.3", uami, false, "user-assigned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := Evaluate(tc.n, ip(tc.ip), tc.caller)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Evaluate = %v %q, want %v and a reason containing %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func FuzzIPRule(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.0/8", "::1", "1.2.3.4/33", "", "x/y"} {
		f.Add(s, "127.0.0.1")
	}
	f.Fuzz(func(t *testing.T, rule, addr string) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		_ = ipRuleMatches(rule, a.Unmap())
	})
}
