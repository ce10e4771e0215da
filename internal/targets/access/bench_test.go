package access_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/access/accesstest"
)

const container = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/c1"

// TestBearerRoleAndNetwork runs the three steps on the real identity stack.
func TestBearerRoleAndNetwork(t *testing.T) {
	f := accesstest.New(t, nil)
	ctx := context.Background()
	hub := f.ManagedIdentity(t, "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1")
	tok := f.Token(t, hub, "https://storage.azure.com/")
	caller, err := f.Checker.Authenticate(ctx, tok, identity.ServiceStorage)
	if err != nil {
		t.Fatal(err)
	}
	const write = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	err = f.Checker.Authorize(caller, write, true, container)
	if d, ok := access.IsDenial(err); !ok || d.Step != access.StepAuthorize {
		t.Fatalf("no role: %v", err)
	}
	f.Assign(t, hub.ObjectID, authz.StorageBlobDataContributorRoleID, "/subscriptions/s1/resourceGroups/rg")
	if err := f.Checker.Authorize(caller, write, true, container); err != nil {
		t.Fatalf("with role: %v", err)
	}
	if err := f.Checker.Admit(access.Network{PublicNetworkAccess: "Disabled", TrustedServices: true}, netip.MustParseAddr("127.0.0.1"), &caller); err != nil {
		t.Fatalf("hub through trusted bypass: %v", err)
	}
	// Another service's audience is refused at step 1.
	_, err = f.Checker.Authenticate(ctx, f.Token(t, hub, "https://eventhubs.azure.net/"), identity.ServiceStorage)
	if d, ok := access.IsDenial(err); !ok || d.Step != access.StepAuthenticate {
		t.Fatalf("eventhubs token on storage: %v", err)
	}
}

// BenchmarkDecision measures a warm decision: a cached token, the RBAC
// snapshot and network rules (goal ≤ 10 µs).
func BenchmarkDecision(b *testing.B) {
	f := accesstest.New(b, nil)
	ctx := context.Background()
	sp := f.ServicePrincipal(b, "bench")
	f.Assign(b, sp.ObjectID, authz.StorageBlobDataContributorRoleID, "/subscriptions/s1")
	tok := f.Token(b, sp, "https://storage.azure.com/")
	n := access.Network{DefaultAction: "Deny", IPRules: []string{"127.0.0.0/8"}}
	ip := netip.MustParseAddr("127.0.0.2")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c, err := f.Checker.Authenticate(ctx, tok, identity.ServiceStorage)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Checker.Authorize(c, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", true, container); err != nil {
			b.Fatal(err)
		}
		if err := f.Checker.Admit(n, ip, &c); err != nil {
			b.Fatal(err)
		}
	}
}
