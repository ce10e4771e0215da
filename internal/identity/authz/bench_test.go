package authz

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchmarkAssignments spreads principals×perPrincipal assignments over
// subscriptions, groups, storage accounts, containers, namespaces and hubs,
// with a mix of management and data roles.
func benchmarkAssignments(principals, perPrincipal int) []Assignment {
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{
		ReaderRoleID, ContributorRoleID, OwnerRoleID, StorageBlobDataContributorRoleID,
		StorageBlobDataReaderRoleID, EventHubsDataSenderRoleID, ServiceBusDataSenderRoleID,
		IoTHubDataReaderRoleID, ManagedIdentityOperatorRoleID, StorageBlobDataOwnerRoleID,
	}
	out := make([]Assignment, 0, principals*perPrincipal)
	for p := range principals {
		for i := range perPrincipal {
			sub := fmt.Sprintf("/subscriptions/%08x-0000-4000-8000-000000000000", rng.IntN(50))
			rg := fmt.Sprintf("%s/resourceGroups/rg-%d", sub, rng.IntN(40))
			acct := fmt.Sprintf("%s/providers/Microsoft.Storage/storageAccounts/acct%d", rg, rng.IntN(30))
			scopes := []string{sub, rg, acct, acct + "/blobServices/default/containers/c" + fmt.Sprint(rng.IntN(9))}
			out = append(out, Assignment{
				ID:               fmt.Sprintf("a-%d-%d", p, i),
				PrincipalID:      fmt.Sprintf("%08x-1111-4111-8111-%012x", p, p),
				RoleDefinitionID: roles[rng.IntN(len(roles))],
				Scope:            scopes[rng.IntN(len(scopes))],
			})
		}
	}
	return out
}

type benchQuery struct {
	principal, action, scope string
	data                     bool
}

// benchmarkQueries derives n questions from the evaluator's own assignments
// whose answer is allowed (or denied), at a resource below the assignment.
func benchmarkQueries(e *Evaluator, allowed bool, n int) []benchQuery {
	candidates := []benchQuery{
		{action: "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", data: true},
		{action: "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", data: true},
		{action: "Microsoft.Storage/storageAccounts/read"},
		{action: "Microsoft.Storage/storageAccounts/write"},
		{action: "Microsoft.Authorization/roleAssignments/write"},
		{action: "Microsoft.EventHub/namespaces/messages/send/action", data: true},
	}
	var out []benchQuery
	for key, g := range e.principals {
		for _, a := range g.compiled {
			for _, c := range candidates {
				q := benchQuery{principal: key, action: c.action, data: c.data,
					scope: a.scope.scope + "/providers/Microsoft.Storage/storageAccounts/x/blobServices/default/containers/y"}
				if e.Authorize(q.principal, q.action, q.data, q.scope).Allowed == allowed {
					out = append(out, q)
					if len(out) == n {
						return out
					}
				}
			}
		}
	}
	return out
}

// BenchmarkAuthorize10k: 10,000 assignments over 1,000 principals. Goal:
// ≤ 2 µs per decision.
func BenchmarkAuthorize10k(b *testing.B) {
	e := NewEvaluator(BuiltInRoles(), benchmarkAssignments(1000, 10))
	for _, allowed := range []bool{true, false} {
		name := "allowed"
		if !allowed {
			name = "denied"
		}
		qs := benchmarkQueries(e, allowed, 512)
		if len(qs) == 0 {
			b.Fatalf("no %s queries", name)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := &qs[i%len(qs)]
				e.Authorize(q.principal, q.action, q.data, q.scope)
				i++
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	p := compilePattern("Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action")
	for b.Loop() {
		p.match("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", true)
	}
}
