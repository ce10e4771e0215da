// Package armtest runs the real ARM control plane for tests: a SQLite
// store, the installation, the identity stack of accesstest (keys, issuer,
// validator, RBAC engine) and a managed identity manager, then the ARM
// service, its operation runner and handler behind an httptest TLS server
// with the resource types under test.
//
// A fixture builds in two steps because the resource types need the store
// and the identity stack first:
//
//	s := armtest.New(t)
//	accounts := storage.NewAccounts(storage.Config{Resources: s.Store.Resources(), Identities: s.Identities, …})
//	s.Serve(t, append([]arm.ResourceType{accounts}, s.RoleTypes()...), accounts.ProviderActions()...)
//	s.Call(t, "PUT", s.GroupID("rg")+"/providers/…", body, 200)
//
// Everything is closed by t.Cleanup; cleanups a fixture registers after New
// run first, so its data planes stop before the store closes.
package armtest
