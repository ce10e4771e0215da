package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

func servicePrincipal(objectID, appID, name string) store.Principal {
	return store.Principal{
		ObjectID: objectID, AppID: appID, Kind: store.KindServicePrincipal, Name: name,
		Credentials: json.RawMessage(`{"secrets":[{"hash":"h1"}]}`),
	}
}

func user(objectID, name string) store.Principal {
	return store.Principal{
		ObjectID: objectID, Kind: store.KindUser, Name: name,
		Credentials: json.RawMessage(`{"passwordHash":"p1"}`),
	}
}

func managedIdentity(objectID, appID, resourceID string) store.Principal {
	return store.Principal{
		ObjectID: objectID, AppID: appID, Kind: store.KindManagedIdentity, Name: resourceID, ResourceID: resourceID,
	}
}

func mustCreatePrincipal(t *testing.T, ps store.Principals, p store.Principal) store.Principal {
	t.Helper()
	if err := ps.Create(t.Context(), p); err != nil {
		t.Fatalf("Create principal %s: %v", p.ObjectID, err)
	}
	stored, err := ps.Get(t.Context(), p.ObjectID)
	if err != nil {
		t.Fatalf("Get principal %s: %v", p.ObjectID, err)
	}
	return stored
}

func checkPrincipal(t *testing.T, got, want store.Principal) {
	t.Helper()
	if got.ObjectID != want.ObjectID || got.AppID != want.AppID || got.Kind != want.Kind ||
		got.Name != want.Name || got.ResourceID != want.ResourceID {
		t.Errorf("principal = %+v, want %+v", got, want)
	}
	checkJSON(t, "Credentials of "+want.ObjectID, got.Credentials, string(want.Credentials))
	if want.ETag != "" && got.ETag != want.ETag {
		t.Errorf("ETag of %s = %q, want %q", want.ObjectID, got.ETag, want.ETag)
	}
	if !want.CreatedAt.IsZero() && !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt of %s = %v, want %v", want.ObjectID, got.CreatedAt, want.CreatedAt)
	}
	if !want.UpdatedAt.IsZero() && !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt of %s = %v, want %v", want.ObjectID, got.UpdatedAt, want.UpdatedAt)
	}
}

// checkObjectIDs compares a listing with the object ids it should hold, in order.
func checkObjectIDs(t *testing.T, what string, got []store.Principal, want []string) {
	t.Helper()
	ids := make([]string, len(got))
	for i, p := range got {
		ids[i] = p.ObjectID
	}
	if !slices.Equal(ids, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, ids, want)
	}
}

func runPrincipals(t *testing.T, newBackend func(t *testing.T) Backend) {
	runTests(t, newBackend, []test{
		{"Missing", testPrincipalMissing},
		{"CreateThenGet", testPrincipalCreateGet},
		{"CreateTaken", testPrincipalCreateTaken},
		{"EmptyAppIDIsNotUnique", testPrincipalEmptyAppID},
		{"Update", testPrincipalUpdate},
		{"UpdateCannotTakeUserName", testPrincipalUpdateNameTaken},
		{"UpdateCannotChangeIdentity", testPrincipalUpdateIdentity},
		{"UpdaterErrorAborts", testPrincipalUpdaterError},
		{"DeleteFreesNames", testPrincipalDelete},
		{"ListFilters", testPrincipalListFilters},
		{"ListPages", testPrincipalListPages},
		{"ConcurrentUpdateLosesNoUpdate", testPrincipalConcurrentUpdate},
		{"ConcurrentCreateCreatesOnce", testPrincipalConcurrentCreate},
		{"ConcurrentRenameTakesNameOnce", testPrincipalConcurrentRename},
	})
}

func testPrincipalMissing(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	if _, err := ps.Get(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.GetByAppID(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByAppID missing: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.GetUser(ctx, "none@contoso.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser missing: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.Update(ctx, "none", func(*store.Principal) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update missing: err = %v, want ErrNotFound", err)
	}
	if err := ps.Delete(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete missing: err = %v, want ErrNotFound", err)
	}

	// Users have no app id: an empty client id must not find one of them,
	// nor may a user be found through a service principal's name.
	mustCreatePrincipal(t, ps, user("oid-user", "alice@contoso.com"))
	mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	if p, err := ps.GetByAppID(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByAppID(\"\") = %+v, %v; want ErrNotFound", p, err)
	}
	if p, err := ps.GetUser(ctx, "builder"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser of a service principal's name = %+v, %v; want ErrNotFound", p, err)
	}
	if p, err := ps.GetByAppID(ctx, "oid-sp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByAppID of an object id = %+v, %v; want ErrNotFound", p, err)
	}
}

func testPrincipalCreateGet(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	before := time.Now().Add(-time.Second)
	sp := servicePrincipal("oid-sp", "app-sp", "builder")
	alice := user("oid-alice", "Alice@Contoso.com")
	mi := managedIdentity("oid-mi", "app-mi", hubID("sub", "rg", "hub"))
	mi.Credentials = nil
	for _, p := range []store.Principal{sp, alice, mi} {
		if err := ps.Create(ctx, p); err != nil {
			t.Fatalf("Create %s: %v", p.ObjectID, err)
		}
	}

	stored, err := ps.Get(ctx, sp.ObjectID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkPrincipal(t, stored, sp)
	if stored.ETag == "" || strings.ContainsAny(stored.ETag, `"`) {
		t.Errorf("ETag = %q, want a non-empty value without quotes", stored.ETag)
	}
	if stored.CreatedAt.Before(before) || !stored.UpdatedAt.Equal(stored.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want equal and recent", stored.CreatedAt, stored.UpdatedAt)
	}
	got, err := ps.GetByAppID(ctx, sp.AppID)
	if err != nil {
		t.Fatalf("GetByAppID: %v", err)
	}
	checkPrincipal(t, got, stored)

	for _, name := range []string{"Alice@Contoso.com", "alice@contoso.com", "ALICE@CONTOSO.COM"} {
		got, err := ps.GetUser(ctx, name)
		if err != nil {
			t.Fatalf("GetUser(%q): %v", name, err)
		}
		// The name keeps the spelling it was created with.
		checkPrincipal(t, got, alice)
	}

	got, err = ps.GetByAppID(ctx, mi.AppID)
	if err != nil {
		t.Fatalf("GetByAppID of the managed identity: %v", err)
	}
	checkPrincipal(t, got, mi)
	if got.Credentials != nil {
		t.Errorf("Credentials = %s, want nil as created", got.Credentials)
	}
}

func testPrincipalCreateTaken(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	sp := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	alice := mustCreatePrincipal(t, ps, user("oid-alice", "alice@contoso.com"))

	for _, tc := range []struct {
		name string
		p    store.Principal
	}{
		{"object id", servicePrincipal("oid-sp", "app-2", "other")},
		{"object id of another kind", user("oid-sp", "bob@contoso.com")},
		{"app id", servicePrincipal("oid-other", "app-1", "other")},
		{"app id of another kind", managedIdentity("oid-other", "app-1", hubID("sub", "rg", "hub"))},
		{"user name", user("oid-other", "alice@contoso.com")},
		{"user name in another case", user("oid-other", "ALICE@Contoso.COM")},
	} {
		if err := ps.Create(ctx, tc.p); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("Create with taken %s: err = %v, want ErrAlreadyExists", tc.name, err)
		}
	}
	// The refused creates left nothing behind.
	if _, err := ps.Get(ctx, "oid-other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a refused create: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.GetUser(ctx, "bob@contoso.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser of a refused create: err = %v, want ErrNotFound", err)
	}
	got, err := ps.Get(ctx, sp.ObjectID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkPrincipal(t, got, sp)
	got, err = ps.GetUser(ctx, "alice@contoso.com")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	checkPrincipal(t, got, alice)

	// Names are unique among users only.
	mustCreatePrincipal(t, ps, servicePrincipal("oid-sp-2", "app-2", "Alice@contoso.com"))
	mustCreatePrincipal(t, ps, servicePrincipal("oid-sp-3", "app-3", "builder"))
	mustCreatePrincipal(t, ps, user("oid-builder", "builder"))
}

func testPrincipalEmptyAppID(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	var want []string
	for i := range 3 {
		p := mustCreatePrincipal(t, ps, user(fmt.Sprintf("oid-user-%d", i), fmt.Sprintf("user%d@contoso.com", i)))
		want = append(want, p.ObjectID)
	}
	got, err := ps.List(ctx, store.PrincipalFilter{Kind: store.KindUser})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkObjectIDs(t, "users", got, want)
}

func testPrincipalUpdate(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	alice := mustCreatePrincipal(t, ps, user("oid-alice", "alice@contoso.com"))

	updated, err := ps.Update(ctx, alice.ObjectID, func(p *store.Principal) error {
		checkPrincipal(t, *p, alice)
		p.Name = "alice.smith@contoso.com"
		p.Credentials = json.RawMessage(`{"passwordHash":"p2"}`)
		// The backend owns these.
		p.ETag, p.CreatedAt, p.UpdatedAt = "mine", time.Time{}, time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := alice
	want.Name, want.Credentials, want.ETag, want.UpdatedAt = "alice.smith@contoso.com", json.RawMessage(`{"passwordHash":"p2"}`), "", time.Time{}
	checkPrincipal(t, updated, want)
	if updated.ETag == "" || updated.ETag == alice.ETag || updated.ETag == "mine" {
		t.Errorf("ETag after Update = %q, want a new one (was %q)", updated.ETag, alice.ETag)
	}
	if updated.UpdatedAt.Before(alice.UpdatedAt) {
		t.Errorf("UpdatedAt after Update = %v, want not before %v", updated.UpdatedAt, alice.UpdatedAt)
	}
	got, err := ps.GetUser(ctx, "ALICE.SMITH@contoso.com")
	if err != nil {
		t.Fatalf("GetUser by new name: %v", err)
	}
	checkPrincipal(t, got, updated)
	if _, err := ps.GetUser(ctx, "alice@contoso.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser by old name: err = %v, want ErrNotFound", err)
	}
	// The old name is free again.
	mustCreatePrincipal(t, ps, user("oid-alice-2", "Alice@contoso.com"))

	// A user may change the case of its own name.
	if _, err := ps.Update(ctx, alice.ObjectID, func(p *store.Principal) error {
		p.Name = "Alice.Smith@Contoso.com"
		return nil
	}); err != nil {
		t.Fatalf("Update of the name's case: %v", err)
	}

	// A managed identity moves with its resource's id.
	mi := mustCreatePrincipal(t, ps, managedIdentity("oid-mi", "app-mi", hubID("sub", "rg", "hub")))
	moved := hubID("sub", "rg2", "hub")
	if _, err := ps.Update(ctx, mi.ObjectID, func(p *store.Principal) error {
		p.ResourceID, p.Name = moved, moved
		return nil
	}); err != nil {
		t.Fatalf("Update of the resource id: %v", err)
	}
	list, err := ps.List(ctx, store.PrincipalFilter{ResourceID: strings.ToUpper(moved)})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkObjectIDs(t, "principals of the moved resource", list, []string{mi.ObjectID})
	list, err = ps.List(ctx, store.PrincipalFilter{ResourceID: mi.ResourceID})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkObjectIDs(t, "principals of the old resource id", list, nil)
}

func testPrincipalUpdateNameTaken(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	mustCreatePrincipal(t, ps, user("oid-alice", "alice@contoso.com"))
	bob := mustCreatePrincipal(t, ps, user("oid-bob", "bob@contoso.com"))
	_, err := ps.Update(ctx, bob.ObjectID, func(p *store.Principal) error {
		p.Name = "ALICE@contoso.com"
		return nil
	})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("Update to a taken user name: err = %v, want ErrAlreadyExists", err)
	}
	got, err := ps.Get(ctx, bob.ObjectID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkPrincipal(t, got, bob)

	// Names are unique among users only.
	sp := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	if _, err := ps.Update(ctx, sp.ObjectID, func(p *store.Principal) error {
		p.Name = "alice@contoso.com"
		return nil
	}); err != nil {
		t.Errorf("Update of a service principal to a user's name: %v", err)
	}
}

func testPrincipalUpdateIdentity(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	sp := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	for name, change := range map[string]func(p *store.Principal){
		"object id":          func(p *store.Principal) { p.ObjectID = "oid-other" },
		"app id":             func(p *store.Principal) { p.AppID = "app-2" },
		"app id to empty":    func(p *store.Principal) { p.AppID = "" },
		"kind":               func(p *store.Principal) { p.Kind = store.KindManagedIdentity },
		"kind to user":       func(p *store.Principal) { p.Kind = store.KindUser },
		"object id and name": func(p *store.Principal) { p.ObjectID, p.Name = "oid-other", "renamed" },
	} {
		_, err := ps.Update(ctx, sp.ObjectID, func(p *store.Principal) error {
			change(p)
			return nil
		})
		if err == nil {
			t.Errorf("Update that changes the %s: err = nil, want an error", name)
		}
		got, err := ps.Get(ctx, sp.ObjectID)
		if err != nil {
			t.Fatalf("Get after Update that changes the %s: %v", name, err)
		}
		checkPrincipal(t, got, sp)
	}
	if _, err := ps.Get(ctx, "oid-other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the object id an updater tried: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.GetByAppID(ctx, "app-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByAppID of the app id an updater tried: err = %v, want ErrNotFound", err)
	}
}

func testPrincipalUpdaterError(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	sp := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	_, err := ps.Update(ctx, sp.ObjectID, func(p *store.Principal) error {
		p.Name = "changed"
		p.Credentials = json.RawMessage(`{}`)
		return fmt.Errorf("etag mismatch: %w", store.ErrPreconditionFailed)
	})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("Update with failing updater: err = %v, want ErrPreconditionFailed passed through", err)
	}
	got, err := ps.Get(ctx, sp.ObjectID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkPrincipal(t, got, sp)
}

func testPrincipalDelete(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	sp := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp", "app-1", "builder"))
	alice := mustCreatePrincipal(t, ps, user("oid-alice", "alice@contoso.com"))
	other := mustCreatePrincipal(t, ps, servicePrincipal("oid-other", "app-2", "other"))
	for _, p := range []store.Principal{sp, alice} {
		if err := ps.Delete(ctx, p.ObjectID); err != nil {
			t.Fatalf("Delete %s: %v", p.ObjectID, err)
		}
		if _, err := ps.Get(ctx, p.ObjectID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %s after Delete: err = %v, want ErrNotFound", p.ObjectID, err)
		}
		if err := ps.Delete(ctx, p.ObjectID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second Delete of %s: err = %v, want ErrNotFound", p.ObjectID, err)
		}
	}
	if _, err := ps.GetByAppID(ctx, sp.AppID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByAppID after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := ps.GetUser(ctx, alice.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after Delete: err = %v, want ErrNotFound", err)
	}
	got, err := ps.Get(ctx, other.ObjectID)
	if err != nil {
		t.Fatalf("Get of a principal not deleted: %v", err)
	}
	checkPrincipal(t, got, other)

	// The deleted principals' app id and user name can be taken again.
	mustCreatePrincipal(t, ps, servicePrincipal("oid-sp-new", sp.AppID, "builder"))
	mustCreatePrincipal(t, ps, user("oid-alice-new", "ALICE@contoso.com"))
}

func testPrincipalListFilters(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	hubA, hubB := hubID("sub", "rg", "hub-a"), hubID("sub", "rg", "hub-b")
	spA := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp-a", "app-sp-a", "a"))
	spB := mustCreatePrincipal(t, ps, servicePrincipal("oid-sp-b", "app-sp-b", "b"))
	alice := mustCreatePrincipal(t, ps, user("oid-alice", "alice@contoso.com"))
	miA := mustCreatePrincipal(t, ps, managedIdentity("oid-mi-a", "app-mi-a", hubA))
	miA2 := mustCreatePrincipal(t, ps, managedIdentity("oid-mi-a2", "app-mi-a2", strings.ToUpper(hubA)))
	miB := mustCreatePrincipal(t, ps, managedIdentity("oid-mi-b", "app-mi-b", hubB))
	sorted := func(ps ...store.Principal) []string {
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.ObjectID
		}
		slices.Sort(ids)
		return ids
	}

	for _, tc := range []struct {
		name   string
		filter store.PrincipalFilter
		want   []string
	}{
		{"all", store.PrincipalFilter{}, sorted(spA, spB, alice, miA, miA2, miB)},
		{"service principals", store.PrincipalFilter{Kind: store.KindServicePrincipal}, sorted(spA, spB)},
		{"users", store.PrincipalFilter{Kind: store.KindUser}, sorted(alice)},
		{"managed identities", store.PrincipalFilter{Kind: store.KindManagedIdentity}, sorted(miA, miA2, miB)},
		{"resource", store.PrincipalFilter{ResourceID: hubA}, sorted(miA, miA2)},
		{"resource in another case", store.PrincipalFilter{ResourceID: strings.ToLower(hubB)}, sorted(miB)},
		{"kind and resource", store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: hubA}, sorted(miA, miA2)},
		{"other kind and resource", store.PrincipalFilter{Kind: store.KindServicePrincipal, ResourceID: hubA}, nil},
		{"resource without principals", store.PrincipalFilter{ResourceID: hubID("sub", "rg", "hub")}, nil},
	} {
		got, err := ps.List(ctx, tc.filter)
		if err != nil {
			t.Fatalf("List %s: %v", tc.name, err)
		}
		checkObjectIDs(t, tc.name, got, tc.want)
	}

	got, err := ps.List(ctx, store.PrincipalFilter{ResourceID: hubB})
	if err != nil || len(got) != 1 {
		t.Fatalf("List of hub-b's principals = %v, %v; want one", got, err)
	}
	checkPrincipal(t, got[0], miB)
}

func testPrincipalListPages(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	// Object ids are compared as given, bytewise: upper case before lower
	// case, and punctuation where its byte value puts it, which linguistic
	// collations do not.
	var want []string
	for i, oid := range []string{"b-1", "B_2", "a.3", "a-3", "A3", "a_3", "b10", "b1"} {
		p := servicePrincipal(oid, fmt.Sprintf("app-%d", i), oid)
		mustCreatePrincipal(t, ps, p)
		want = append(want, oid)
	}
	mustCreatePrincipal(t, ps, user("a-user", "alice@contoso.com"))
	slices.Sort(want)
	filter := store.PrincipalFilter{Kind: store.KindServicePrincipal}

	all, err := ps.List(ctx, filter)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkObjectIDs(t, "without limit", all, want)

	var (
		paged []store.Principal
		pages []int
	)
	filter.Limit = 3
	for {
		page, err := ps.List(ctx, filter)
		if err != nil {
			t.Fatalf("List page: %v", err)
		}
		if len(page) == 0 {
			break
		}
		if len(pages) == len(want) {
			t.Fatalf("paging does not end: page sizes %v", pages)
		}
		pages = append(pages, len(page))
		paged = append(paged, page...)
		filter.After = page[len(page)-1].ObjectID
	}
	checkObjectIDs(t, "paged", paged, want)
	if !slices.Equal(pages, []int{3, 3, 2}) {
		t.Errorf("page sizes = %v, want [3 3 2]", pages)
	}
}

func testPrincipalConcurrentUpdate(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	sp := servicePrincipal("oid-sp", "app-1", "builder")
	sp.Credentials = json.RawMessage(`{"n":0}`)
	mustCreatePrincipal(t, ps, sp)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		etags = map[string]bool{}
	)
	for range concurrency {
		wg.Go(func() {
			stored, err := ps.Update(ctx, sp.ObjectID, func(p *store.Principal) error {
				var c struct{ N int }
				if err := json.Unmarshal(p.Credentials, &c); err != nil {
					return err
				}
				p.Credentials = json.RawMessage(fmt.Sprintf(`{"n":%d}`, c.N+1))
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if etags[stored.ETag] {
				t.Errorf("two updates returned ETag %q", stored.ETag)
			}
			etags[stored.ETag] = true
		})
	}
	wg.Wait()
	got, err := ps.Get(ctx, sp.ObjectID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkJSON(t, "Credentials after concurrent updates", got.Credentials, fmt.Sprintf(`{"n":%d}`, concurrency))
}

// testPrincipalConcurrentCreate races creates that differ in object id but
// share an app id, or a user name in different cases: one of each must win.
func testPrincipalConcurrentCreate(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	race := func(what string, principal func(i int) store.Principal) {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []int
		)
		for i := range concurrency {
			wg.Go(func() {
				err := ps.Create(ctx, principal(i))
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, i)
					mu.Unlock()
				case !errors.Is(err, store.ErrAlreadyExists):
					t.Errorf("Create with contested %s: err = %v, want nil or ErrAlreadyExists", what, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Errorf("%d creates with the same %s succeeded, want exactly 1", len(winners), what)
		}
	}
	race("app id", func(i int) store.Principal {
		return servicePrincipal(fmt.Sprintf("oid-sp-%d", i), "app-contested", "builder")
	})
	race("user name", func(i int) store.Principal {
		name := "alice@contoso.com"
		if i%2 == 1 {
			name = "Alice@Contoso.com"
		}
		return user(fmt.Sprintf("oid-user-%d", i), name)
	})
	all, err := ps.List(ctx, store.PrincipalFilter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(all) != 2 {
		t.Errorf("List after the races holds %d principals, want 2", len(all))
	}
}

// testPrincipalConcurrentRename races users renaming themselves to one name:
// only one may get it, even when each checked before that it was free.
func testPrincipalConcurrentRename(t *testing.T, s store.Store) {
	ctx, ps := t.Context(), s.Principals()
	for i := range concurrency {
		mustCreatePrincipal(t, ps, user(fmt.Sprintf("oid-user-%02d", i), fmt.Sprintf("user%d@contoso.com", i)))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
	)
	for i := range concurrency {
		wg.Go(func() {
			oid := fmt.Sprintf("oid-user-%02d", i)
			_, err := ps.Update(ctx, oid, func(p *store.Principal) error {
				p.Name = "admin@contoso.com"
				return nil
			})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, oid)
				mu.Unlock()
			case !errors.Is(err, store.ErrAlreadyExists):
				t.Errorf("Update to a contested name: err = %v, want nil or ErrAlreadyExists", err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d users were renamed to one name, want exactly 1: %v", len(winners), winners)
	}
	got, err := ps.GetUser(ctx, "ADMIN@contoso.com")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.ObjectID != winners[0] {
		t.Errorf("GetUser found %s, but %s won the rename", got.ObjectID, winners[0])
	}
}
