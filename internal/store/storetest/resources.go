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

const (
	hubType         = "Microsoft.Devices/IotHubs"
	certificateType = "Microsoft.Devices/IotHubs/certificates"
	groupType       = "Microsoft.Resources/resourceGroups"
)

func groupID(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }

func hubID(sub, rg, name string) string {
	return groupID(sub, rg) + "/providers/" + hubType + "/" + name
}

func resourceGroup(sub, rg string) store.Resource {
	return store.Resource{
		ID: groupID(sub, rg), Type: groupType, Subscription: sub, ResourceGroup: rg,
		ParentID: "/subscriptions/" + sub, Name: rg, Body: json.RawMessage(`{"location":"westeurope"}`),
	}
}

func hub(sub, rg, name string) store.Resource {
	return store.Resource{
		ID: hubID(sub, rg, name), Type: hubType, Subscription: sub, ResourceGroup: rg,
		ParentID: groupID(sub, rg), Name: name, Body: json.RawMessage(`{"sku":{"name":"S1"}}`),
	}
}

func certificate(parent store.Resource, name string) store.Resource {
	return store.Resource{
		ID: parent.ID + "/certificates/" + name, Type: certificateType, Subscription: parent.Subscription,
		ResourceGroup: parent.ResourceGroup, ParentID: parent.ID, Name: name, Body: json.RawMessage(`{}`),
	}
}

// testResource is a hub with the given id and body.
func testResource(id, body string) store.Resource {
	r := hub("sub", "rg", "hub")
	r.ID, r.Body = id, json.RawMessage(body)
	return r
}

// mustPut stores r as it is and returns what the store kept.
func mustPut(t *testing.T, rs store.Resources, r store.Resource) store.Resource {
	t.Helper()
	stored, _, err := rs.Put(t.Context(), r.ID, func(*store.Resource) (store.Resource, error) { return r, nil })
	if err != nil {
		t.Fatalf("Put %s: %v", r.ID, err)
	}
	return stored
}

func checkResource(t *testing.T, got, want store.Resource) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Subscription != want.Subscription ||
		got.ResourceGroup != want.ResourceGroup || got.ParentID != want.ParentID || got.Name != want.Name {
		t.Errorf("resource = %+v, want %+v", got, want)
	}
	checkJSON(t, "Body of "+want.ID, got.Body, string(want.Body))
	if want.ETag != "" && got.ETag != want.ETag {
		t.Errorf("ETag of %s = %q, want %q", want.ID, got.ETag, want.ETag)
	}
	if !want.CreatedAt.IsZero() && !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt of %s = %v, want %v", want.ID, got.CreatedAt, want.CreatedAt)
	}
	if !want.UpdatedAt.IsZero() && !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt of %s = %v, want %v", want.ID, got.UpdatedAt, want.UpdatedAt)
	}
}

// checkIDs compares a listing with the ids it should hold, in order.
func checkIDs(t *testing.T, what string, got []store.Resource, want []string) {
	t.Helper()
	ids := make([]string, len(got))
	for i, r := range got {
		ids[i] = r.ID
	}
	if !slices.Equal(ids, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, ids, want)
	}
}

// byKey orders ids the way List must: by store.Key.
func byKey(ids ...string) []string {
	return slices.SortedFunc(slices.Values(ids), func(a, b string) int {
		return strings.Compare(store.Key(a), store.Key(b))
	})
}

func counter(r *store.Resource) int {
	if r == nil {
		return 0
	}
	var body struct{ N int }
	json.Unmarshal(r.Body, &body)
	return body.N
}

func withCounter(r store.Resource, n int) store.Resource {
	r.Body = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
	return r
}

var errUpdater = errors.New("updater refused")

func runResources(t *testing.T, newBackend func(t *testing.T) Backend) {
	runTests(t, newBackend, []test{
		{"GetMissing", testGetMissing},
		{"PutCreatesThenReplaces", testPutCreatesThenReplaces},
		{"ETagChangesOnEveryWrite", testETagChanges},
		{"UpdaterErrorAborts", testUpdaterErrorAborts},
		{"DeleteMissing", testDeleteMissing},
		{"DeleteIfMatch", testDeleteIfMatch},
		{"DeleteRemovesSubtree", testDeleteRemovesSubtree},
		{"ListFilters", testListFilters},
		{"ListPages", testListPages},
		{"ConcurrentPutLosesNoUpdate", testConcurrentPut},
		{"ConcurrentCreateCreatesOnce", testConcurrentCreate},
	})
}

func testGetMissing(t *testing.T, s store.Store) {
	_, err := s.Resources().Get(t.Context(), hubID("sub", "rg", "none"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
	}
}

func testPutCreatesThenReplaces(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	want := hub("Sub-1", "My-RG", "My-Hub")
	before := time.Now().Add(-time.Second)

	stored, created, err := rs.Put(ctx, want.ID, func(current *store.Resource) (store.Resource, error) {
		if current != nil {
			t.Errorf("updater got %+v for a new id, want nil", current)
		}
		return want, nil
	})
	if err != nil || !created {
		t.Fatalf("Put new: created = %v, err = %v; want true, nil", created, err)
	}
	checkResource(t, stored, want)
	if stored.ETag == "" || strings.ContainsAny(stored.ETag, `"`) {
		t.Errorf("ETag = %q, want a non-empty value without quotes", stored.ETag)
	}
	if stored.CreatedAt.Before(before) || !stored.UpdatedAt.Equal(stored.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want equal and recent", stored.CreatedAt, stored.UpdatedAt)
	}

	got, err := rs.Get(ctx, strings.ToUpper(want.ID))
	if err != nil {
		t.Fatalf("Get by upper-case id: %v", err)
	}
	checkResource(t, got, stored)

	// A second Put under another spelling replaces the same resource and
	// keeps the id as first created.
	replacement := hub("sub-1", "my-rg", "my-hub")
	replacement.Body = json.RawMessage(`{"sku":{"name":"S2"}}`)
	replaced, created, err := rs.Put(ctx, strings.ToLower(want.ID), func(current *store.Resource) (store.Resource, error) {
		if current == nil {
			t.Error("updater got nil for a stored id")
			return replacement, errUpdater
		}
		checkResource(t, *current, stored)
		return replacement, nil
	})
	if err != nil || created {
		t.Fatalf("Put existing: created = %v, err = %v; want false, nil", created, err)
	}
	if replaced.ID != want.ID {
		t.Errorf("ID after replace = %q, want %q as first created", replaced.ID, want.ID)
	}
	checkJSON(t, "Body after replace", replaced.Body, `{"sku":{"name":"S2"}}`)
	if !replaced.CreatedAt.Equal(stored.CreatedAt) || replaced.UpdatedAt.Before(stored.UpdatedAt) {
		t.Errorf("CreatedAt, UpdatedAt after replace = %v, %v; want %v and not before %v",
			replaced.CreatedAt, replaced.UpdatedAt, stored.CreatedAt, stored.UpdatedAt)
	}
	got, err = rs.Get(ctx, want.ID)
	if err != nil {
		t.Fatalf("Get after replace: %v", err)
	}
	checkResource(t, got, replaced)
}

func testETagChanges(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	r := hub("sub", "rg", "hub")
	seen := map[string]bool{}
	var last store.Resource
	for i := range 5 {
		last = mustPut(t, rs, withCounter(r, i))
		if seen[last.ETag] {
			t.Fatalf("write %d reused ETag %q", i, last.ETag)
		}
		seen[last.ETag] = true
	}
	got, err := rs.Get(ctx, r.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ETag != last.ETag {
		t.Errorf("Get ETag = %q, want the last write's %q", got.ETag, last.ETag)
	}
}

func testUpdaterErrorAborts(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	r := hub("sub", "rg", "hub")

	_, created, err := rs.Put(ctx, r.ID, func(*store.Resource) (store.Resource, error) {
		return r, errUpdater
	})
	if !errors.Is(err, errUpdater) || created {
		t.Fatalf("Put with failing updater: created = %v, err = %v; want false, the updater's error", created, err)
	}
	if _, err := rs.Get(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after aborted create: err = %v, want ErrNotFound", err)
	}

	stored := mustPut(t, rs, r)
	_, _, err = rs.Put(ctx, r.ID, func(current *store.Resource) (store.Resource, error) {
		current.Body = json.RawMessage(`{"changed":true}`)
		return *current, fmt.Errorf("etag mismatch: %w", store.ErrPreconditionFailed)
	})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("Put with failing updater: err = %v, want ErrPreconditionFailed passed through", err)
	}
	got, err := rs.Get(ctx, r.ID)
	if err != nil {
		t.Fatalf("Get after aborted replace: %v", err)
	}
	checkResource(t, got, stored)
}

func testDeleteMissing(t *testing.T, s store.Store) {
	err := s.Resources().Delete(t.Context(), hubID("sub", "rg", "none"), "")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete missing: err = %v, want ErrNotFound", err)
	}
}

func testDeleteIfMatch(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	stored := mustPut(t, rs, hub("sub", "rg", "hub"))
	child := mustPut(t, rs, certificate(stored, "cert"))

	if err := rs.Delete(ctx, stored.ID, "not-"+stored.ETag); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("Delete with stale If-Match: err = %v, want ErrPreconditionFailed", err)
	}
	for _, r := range []store.Resource{stored, child} {
		if _, err := rs.Get(ctx, r.ID); err != nil {
			t.Fatalf("Get %s after refused delete: %v", r.ID, err)
		}
	}
	if err := rs.Delete(ctx, strings.ToUpper(stored.ID), stored.ETag); err != nil {
		t.Fatalf("Delete with current If-Match: %v", err)
	}
	for _, r := range []store.Resource{stored, child} {
		if _, err := rs.Get(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %s after delete: err = %v, want ErrNotFound", r.ID, err)
		}
	}

	again := mustPut(t, rs, hub("sub", "rg", "hub"))
	if err := rs.Delete(ctx, again.ID, ""); err != nil {
		t.Fatalf("Delete without If-Match: %v", err)
	}
}

// testDeleteRemovesSubtree checks that a delete takes exactly the ids under
// the deleted one: not siblings whose names extend it ("a" vs "ab", "hub1"
// vs "hub10") nor ones a LIKE pattern would catch through '_' or '%'.
func testDeleteRemovesSubtree(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	const sub = "sub"
	trees := map[string][]string{} // group name -> ids in it, group included
	for _, rg := range []string{"a", "ab", "a_", "a%", "a%b"} {
		trees[rg] = append(trees[rg], mustPut(t, rs, resourceGroup(sub, rg)).ID)
		h := mustPut(t, rs, hub(sub, rg, "hub1"))
		trees[rg] = append(trees[rg], h.ID, mustPut(t, rs, certificate(h, "c")).ID)
	}
	hub10 := mustPut(t, rs, hub(sub, "a", "hub10")).ID
	hubUnderscore := mustPut(t, rs, hub(sub, "a", "hub_")).ID

	remaining := func(groups ...string) []string {
		var ids []string
		for _, rg := range groups {
			ids = append(ids, trees[rg]...)
		}
		return byKey(ids...)
	}
	check := func(step string, want []string) {
		t.Helper()
		got, err := rs.List(ctx, store.ResourceFilter{})
		if err != nil {
			t.Fatalf("List after %s: %v", step, err)
		}
		checkIDs(t, "after "+step, got, want)
	}

	// '_' in a LIKE pattern would match the 'b' of "ab".
	if err := rs.Delete(ctx, groupID("SUB", "A_"), ""); err != nil {
		t.Fatalf("Delete group a_: %v", err)
	}
	check("deleting group a_", byKey(append(remaining("a", "ab", "a%", "a%b"), hub10, hubUnderscore)...))

	// '%' in a LIKE pattern would match every other group.
	if err := rs.Delete(ctx, groupID(sub, "a%"), ""); err != nil {
		t.Fatalf("Delete group a%%: %v", err)
	}
	check("deleting group a%", byKey(append(remaining("a", "ab", "a%b"), hub10, hubUnderscore)...))

	// A resource takes its children but not the sibling named hub10.
	if err := rs.Delete(ctx, hubID(sub, "a", "HUB1"), ""); err != nil {
		t.Fatalf("Delete hub1: %v", err)
	}
	check("deleting hub1", byKey(trees["a"][0], hub10, hubUnderscore, trees["ab"][0], trees["ab"][1], trees["ab"][2],
		trees["a%b"][0], trees["a%b"][1], trees["a%b"][2]))

	if err := rs.Delete(ctx, groupID(sub, "a"), ""); err != nil {
		t.Fatalf("Delete group a: %v", err)
	}
	check("deleting group a", remaining("ab", "a%b"))
	if err := rs.Delete(ctx, hub10, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete of a resource its group's delete took: err = %v, want ErrNotFound", err)
	}
}

func testListFilters(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	h1 := mustPut(t, rs, hub("sub1", "RG-A", "h1"))
	c1 := mustPut(t, rs, certificate(h1, "c1"))
	h2 := mustPut(t, rs, hub("sub1", "rg-a", "H2"))
	h3 := mustPut(t, rs, hub("sub1", "rg-b", "h3"))
	h4 := mustPut(t, rs, hub("SUB2", "rg-a", "h4"))

	for _, tc := range []struct {
		name   string
		filter store.ResourceFilter
		want   []string
	}{
		{"all", store.ResourceFilter{}, byKey(h1.ID, c1.ID, h2.ID, h3.ID, h4.ID)},
		{"subscription", store.ResourceFilter{Subscription: "SUB1"}, byKey(h1.ID, c1.ID, h2.ID, h3.ID)},
		{"group", store.ResourceFilter{Subscription: "sub1", ResourceGroup: "Rg-A"}, byKey(h1.ID, c1.ID, h2.ID)},
		{"group in any subscription", store.ResourceFilter{ResourceGroup: "RG-A"}, byKey(h1.ID, c1.ID, h2.ID, h4.ID)},
		{"parent", store.ResourceFilter{ParentID: strings.ToUpper(h1.ID)}, []string{c1.ID}},
		{"parent group", store.ResourceFilter{ParentID: groupID("sub1", "rg-a")}, byKey(h1.ID, h2.ID)},
		{"type", store.ResourceFilter{Type: strings.ToLower(hubType)}, byKey(h1.ID, h2.ID, h3.ID, h4.ID)},
		{"type and subscription", store.ResourceFilter{Subscription: "sub1", Type: strings.ToUpper(certificateType)}, []string{c1.ID}},
		{"no match", store.ResourceFilter{Subscription: "sub3"}, nil},
	} {
		got, err := rs.List(ctx, tc.filter)
		if err != nil {
			t.Fatalf("List %s: %v", tc.name, err)
		}
		checkIDs(t, tc.name, got, tc.want)
	}

	got, err := rs.List(ctx, store.ResourceFilter{ParentID: h1.ID})
	if err != nil || len(got) != 1 {
		t.Fatalf("List children of h1 = %v, %v; want c1", got, err)
	}
	checkResource(t, got[0], c1)
}

func testListPages(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	// Punctuation and digits sort differently under linguistic collations
	// than in the bytewise key order List promises.
	var ids []string
	for _, name := range []string{"Hub-7", "hub-1", "HUB_3", "hub10", "hub_2", "hub.6", "Hub4"} {
		ids = append(ids, mustPut(t, rs, hub("sub", "rg", name)).ID)
	}
	mustPut(t, rs, hub("sub", "other", "hub-0"))
	want := byKey(ids...)
	filter := store.ResourceFilter{Subscription: "sub", ResourceGroup: "rg"}

	all, err := rs.List(ctx, filter)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkIDs(t, "without limit", all, want)

	var (
		paged []store.Resource
		pages []int
	)
	filter.Limit = 3
	for {
		page, err := rs.List(ctx, filter)
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
		// After compares keys, so another spelling continues as well.
		filter.After = strings.ToUpper(page[len(page)-1].ID)
	}
	checkIDs(t, "paged", paged, want)
	if !slices.Equal(pages, []int{3, 3, 1}) {
		t.Errorf("page sizes = %v, want [3 3 1]", pages)
	}
}

// concurrency is how many goroutines race in the concurrency tests: enough
// to overlap on any backend, few enough for PostgreSQL's connection limit.
const concurrency = 20

func testConcurrentPut(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	r := hub("sub", "rg", "counter")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		creates int
		etags   = map[string]bool{}
	)
	for range concurrency {
		wg.Go(func() {
			stored, created, err := rs.Put(ctx, r.ID, func(current *store.Resource) (store.Resource, error) {
				return withCounter(r, counter(current)+1), nil
			})
			if err != nil {
				t.Errorf("Put: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if created {
				creates++
			}
			if etags[stored.ETag] {
				t.Errorf("two writes returned ETag %q", stored.ETag)
			}
			etags[stored.ETag] = true
		})
	}
	wg.Wait()
	got, err := rs.Get(ctx, r.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if n := counter(&got); n != concurrency {
		t.Errorf("counter = %d after %d concurrent increments: updates were lost", n, concurrency)
	}
	if creates != 1 {
		t.Errorf("%d Puts reported created, want 1", creates)
	}
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	ctx, rs := t.Context(), s.Resources()
	r := hub("sub", "rg", "contested")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		creator = -1
		creates int
	)
	for i := range concurrency {
		wg.Go(func() {
			_, created, err := rs.Put(ctx, r.ID, func(current *store.Resource) (store.Resource, error) {
				if current != nil {
					return *current, nil
				}
				return withCounter(r, i), nil
			})
			if err != nil {
				t.Errorf("Put: %v", err)
				return
			}
			if created {
				mu.Lock()
				creates++
				creator = i
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if creates != 1 {
		t.Fatalf("%d Puts reported created, want exactly 1", creates)
	}
	got, err := rs.Get(ctx, r.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if n := counter(&got); n != creator {
		t.Errorf("stored body is from goroutine %d, but goroutine %d reported the create", n, creator)
	}
}
