package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/routing/engine"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/blob"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
	"github.com/outpost-iot/outpost/internal/targets/servicebus"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

const (
	suffix               = "outpost.test"
	roleEventHubsSender  = authz.EventHubsDataSenderRoleID
	roleServiceBusSender = authz.ServiceBusDataSenderRoleID
	roleBlobContributor  = authz.StorageBlobDataContributorRoleID
)

// fixture is every real component routing touches: armtest's SQLite store
// and ARM framework with the Event Hubs, Service Bus, Storage and RBAC types, the
// identity stack (keys, issuer, validator, RBAC engine), one embedded
// JetStream, the three data planes behind real TLS, an egress that dials
// them by host name, the hub's telemetry streams, and the engine.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	sub    string
	arm    *armtest.Server
	bus    *bus.Bus
	issuer *identity.Issuer
	dir    *identity.Directory
	eh     *eventhubs.Handler
	sb     *servicebus.Handler
	egress *testEgress
	tokens *armtest.Tokens
	stream *telemetry.Streams
	engine *engine.Engine
	cfg    engine.Config // the engine's, for a second node's engine
	// paths are where each hub's device messages are published, as the
	// hub's routing settings choose.
	paths map[string]telemetry.Path
}

// testEgress sends {ns}.servicebus.{suffix} to whichever messaging data
// plane serves the namespace (as the app's messagingHost does) and
// {account}.blob.{suffix} to the blob plane, verifying their certificates.
type testEgress struct {
	eh, sb, blob *http.Client
	ehHandler    *eventhubs.Handler
}

func (e *testEgress) Do(r *http.Request) (*http.Response, error) {
	host := r.URL.Hostname()
	switch {
	case strings.HasSuffix(host, ".blob."+suffix):
		return e.blob.Do(r)
	case strings.HasSuffix(host, ".servicebus."+suffix):
		ns := eventhubs.NamespaceFromHost(host, suffix)
		if ok, err := e.ehHandler.Serves(r.Context(), ns); err == nil && ok {
			return e.eh.Do(r)
		}
		return e.sb.Do(r)
	}
	return nil, fmt.Errorf("test egress: no route to %s", host)
}

// condition is a TEST STAND-IN for the routing query language (the lead
// wires internal/routing/query): it knows "true", "false" and
// `name = 'value'` on application properties.
type condition struct {
	constant *bool
	name     string
	value    string
}

func (c condition) Match(m *engine.Message) bool {
	if c.constant != nil {
		return *c.constant
	}
	return m.App[c.name] == c.value
}

func compileStandIn(s string) (engine.Condition, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "true":
		b := true
		return condition{constant: &b}, nil
	case "false":
		b := false
		return condition{constant: &b}, nil
	}
	name, value, ok := strings.Cut(s, "=")
	value = strings.TrimSpace(value)
	if !ok || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
		return nil, fmt.Errorf("the test stand-in only knows true, false and name = 'value', not %q", s)
	}
	return condition{name: strings.TrimSpace(name), value: value[1 : len(value)-1]}, nil
}

type fixtureOption func(*engine.Config)

func newFixture(tb testing.TB, opts ...fixtureOption) *fixture {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ENGINE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s := armtest.New(tb, armtest.WithLog(log))
	st := s.Store
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{t: tb, ctx: ctx, st: st, sub: s.SubscriptionID(), arm: s, paths: map[string]telemetry.Path{},
		issuer: s.Identity.Issuer, dir: s.Identity.Directory}
	checker := s.Identity.Checker
	manager := s.Identities
	var err error
	f.bus, err = bus.Open(ctx, bus.Config{StoreDir: tb.TempDir(), StreamPrefix: "t"}, log)
	if err != nil {
		tb.Fatal(err)
	}

	// Event Hubs.
	ehStreams, err := eventhubs.NewStreams(f.bus)
	if err != nil {
		tb.Fatal(err)
	}
	f.eh, err = eventhubs.New(eventhubs.Config{Resources: st.Resources(), Streams: ehStreams, DNSSuffix: suffix, Log: log, Access: checker})
	if err != nil {
		tb.Fatal(err)
	}
	ehProvider := ehresource.New(ehresource.Config{DNSSuffix: suffix, Identities: manager, Resources: st.Resources(),
		Runtime: ehStreams, Changed: f.eh.Invalidate})
	// Service Bus.
	f.sb, err = servicebus.New(servicebus.Config{Resources: st.Resources(), Bus: f.bus, Access: checker, DNSSuffix: suffix, Log: log, MaxWait: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	sbTypes, sbActions := sbresource.Types(sbresource.Config{DNSSuffix: suffix, Resources: st.Resources(), Runtime: f.sb, Identities: manager})
	// Storage.
	disk, err := blob.NewDisk(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	dirs := storage.NewDirectory(st.Resources())
	accounts := storage.NewAccounts(storage.Config{DNSSuffix: suffix, Identities: manager, Resources: st.Resources(), Blobs: disk, Directory: dirs})
	blobHandler := blob.New(blob.Config{DNSSuffix: suffix, Accounts: dirs, Containers: storage.NewContainers(st.Resources(), nil), Blobs: disk,
		Access: checker, AuthorityURL: "https://login." + suffix, TenantID: s.TenantID(), Log: log})

	types := append(ehProvider.Types(), sbTypes...)
	types = append(types, accounts, storage.NewBlobServices(st.Resources()), storage.NewContainerType(st.Resources(), disk, nil))
	types = append(types, s.RoleTypes()...)
	ehSrv, sbSrv, blobSrv := httptest.NewTLSServer(f.eh), httptest.NewTLSServer(f.sb), httptest.NewTLSServer(blobHandler)
	f.egress = &testEgress{eh: armtest.DialTo(ehSrv), sb: armtest.DialTo(sbSrv), blob: armtest.DialTo(blobSrv), ehHandler: f.eh}

	f.stream = telemetry.New(f.bus, time.Now)
	f.tokens = armtest.NewTokens(f.issuer)
	cfg := engine.Config{
		Bus: f.bus, Resources: st.Resources(), Egress: f.egress, Tokens: f.tokens, Compile: compileStandIn, Log: log,
		MinBatchFrequency: time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		UnhealthyAttempts: 3,
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.cfg = cfg
	f.engine, err = engine.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- f.sb.Run(ctx) }()
	go func() { done <- f.engine.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		for range 2 {
			<-done
		}
		ehSrv.Close()
		sbSrv.Close()
		blobSrv.Close()
		_ = f.bus.Close(context.Background())
	})
	s.Serve(tb, types, append(ehProvider.ProviderActions(), sbActions...)...)
	return f
}

// call sends an ARM request, waits for a long-running operation it starts,
// and decodes the answer.
func (f *fixture) call(method, path, body string, want int) map[string]any {
	f.t.Helper()
	return f.arm.CallAndWait(f.t, method, path, body, want)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) rg() string { return "/subscriptions/" + f.sub + "/resourceGroups/rg" }

// eventHub creates a namespace with an event hub of 4 partitions and
// returns the event hub's ARM id and the root key.
func (f *fixture) eventHub(ns, eh string) (string, string) {
	const v = "?api-version=2024-01-01"
	id := f.rg() + "/providers/Microsoft.EventHub/namespaces/" + ns
	f.call("PUT", id+v, `{"location":"westus","sku":{"name":"Standard"}}`, 201)
	f.call("PUT", id+"/eventhubs/"+eh+v, `{"properties":{"partitionCount":4}}`, 200)
	keys := f.call("POST", id+"/authorizationRules/RootManageSharedAccessKey/listKeys"+v, "", 200)
	return id + "/eventhubs/" + eh, keys["primaryKey"].(string)
}

const sbVersion = "?api-version=2022-10-01-preview"

// serviceBus creates a namespace and returns its ARM id and root key.
func (f *fixture) serviceBus(ns string) (string, string) {
	id := f.rg() + "/providers/Microsoft.ServiceBus/namespaces/" + ns
	f.call("PUT", id+sbVersion, `{"location":"westus","sku":{"name":"Standard"}}`, 201)
	keys := f.call("POST", id+"/authorizationRules/RootManageSharedAccessKey/listKeys"+sbVersion, "", 200)
	return id, keys["primaryKey"].(string)
}

// storageAccount creates an account with a container; it returns the
// account's ARM id and key1.
func (f *fixture) storageAccount(name, containerName string) (string, string) {
	const v = "?api-version=2023-05-01"
	id := f.rg() + "/providers/Microsoft.Storage/storageAccounts/" + name
	f.call("PUT", id+v, `{"location":"westus","sku":{"name":"Standard_LRS"},"kind":"StorageV2","properties":{}}`, 200)
	f.call("PUT", id+"/blobServices/default/containers/"+containerName+v, `{}`, 201)
	keys := f.call("POST", id+"/listKeys"+v, "", 200)
	return id, keys["keys"].([]any)[0].(map[string]any)["value"].(string)
}

// assign grants a built-in role at scope; it returns the assignment's id.
func (f *fixture) assign(p store.Principal, role, scope string) string {
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + newGUID()
	f.call("PUT", id+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+f.sub+`/providers/Microsoft.Authorization/roleDefinitions/`+role+`","principalId":"`+p.ObjectID+`","principalType":"ServicePrincipal"}}`, 201)
	return id
}

func (f *fixture) unassign(id string) {
	f.call("DELETE", id+"?api-version=2022-04-01", "", 200)
}

func newGUID() string { return uuid.NewString() }

// hubSpec describes a hub document as hubresource stores it.
type hubSpec struct {
	name         string
	partitions   int
	system       bool
	userAssigned []string
	routing      string // properties.routing JSON
}

func (f *fixture) hubID(name string) string {
	return f.rg() + "/providers/Microsoft.Devices/IotHubs/" + name
}

// hub stores the hub document, creates its telemetry stream and its
// system-assigned identity (when asked), reloads the engine and waits for
// the router to be in place.
func (f *fixture) hub(spec hubSpec) store.Principal {
	f.t.Helper()
	if spec.partitions == 0 {
		spec.partitions = 2
	}
	id := f.hubID(spec.name)
	idType := "None"
	switch {
	case spec.system && len(spec.userAssigned) > 0:
		idType = "SystemAssigned, UserAssigned"
	case spec.system:
		idType = "SystemAssigned"
	case len(spec.userAssigned) > 0:
		idType = "UserAssigned"
	}
	uai := map[string]any{}
	for _, u := range spec.userAssigned {
		uai[u] = map[string]any{}
	}
	var routing json.RawMessage = []byte(spec.routing)
	body, _ := json.Marshal(map[string]any{
		"location": "westus",
		"identity": map[string]any{"type": idType, "userAssignedIdentities": uai},
		"properties": map[string]any{
			"eventHubEndpoints": map[string]any{"events": map[string]any{"retentionTimeInDays": 1, "partitionCount": spec.partitions}},
			"routing":           routing,
		},
	})
	if _, _, err := f.st.Resources().Put(f.ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: engine.HubType, Name: spec.name, Subscription: f.sub, ResourceGroup: "rg",
			ParentID: f.rg(), Body: body}, nil
	}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.stream.EnsureHub(f.ctx, spec.name, 1); err != nil {
		f.t.Fatal(err)
	}
	if err := f.engine.EnsureRouter(f.ctx, spec.name, spec.partitions); err != nil {
		f.t.Fatal(err)
	}
	f.paths[spec.name] = telemetry.PathFor(routing)
	var p store.Principal
	if spec.system {
		existing, ok := f.tokens.Principal(id)
		if ok {
			p = existing
		} else {
			p = f.managedIdentity(id)
		}
	}
	f.engine.Reload(spec.name)
	f.waitRouter(spec.name)
	return p
}

// managedIdentity creates the principal of a managed identity of resourceID
// and lets the token path issue its tokens.
func (f *fixture) managedIdentity(resourceID string) store.Principal {
	p, err := f.dir.CreateManagedIdentity(f.ctx, resourceID, resourceID[strings.LastIndexByte(resourceID, '/')+1:])
	if err != nil {
		f.t.Fatal(err)
	}
	f.tokens.Add(resourceID, p)
	return p
}

func (f *fixture) userAssigned(name string) (string, store.Principal) {
	id := f.rg() + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	return id, f.managedIdentity(id)
}

// waitRouter waits until the engine runs the hub's router with its
// current plan.
func (f *fixture) waitRouter(hub string) {
	f.t.Helper()
	waitFor(f.t, 10*time.Second, "router of "+hub, func() bool { return f.engine.Health(hub) != nil })
}

// publish sends a device message into the hub's stream, on the path the
// hub's routing settings choose (as the hub's device endpoints do).
func (f *fixture) publish(hub string, partitions int, device, body string, app map[string]string) {
	f.t.Helper()
	_, err := f.stream.Publish(f.ctx, partitions, f.paths[hub], telemetry.Message{Hub: hub, DeviceID: device, Payload: []byte(body), App: app,
		System: map[string]string{
			telemetry.PropContentType: "application/json", telemetry.PropContentEncoding: "utf-8",
			telemetry.PropAuthMethod:   `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
			telemetry.PropGenerationID: "638000000000000000", telemetry.PropMessageID: "mid-" + body,
		}})
	if err != nil {
		f.t.Fatal(err)
	}
}

// builtIn reads every message on the hub's built-in endpoint.
func (f *fixture) builtIn(hub string) []telemetry.Message {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
	defer cancel()
	info, err := f.bus.JetStream().Stream(ctx, f.bus.Stream(telemetry.StreamName(hub)))
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := info.Info(ctx, jetstream.WithSubjectFilter(f.bus.Subject(telemetry.EventsSubject(hub))))
	if err != nil {
		f.t.Fatal(err)
	}
	var want uint64
	for _, n := range st.State.Subjects {
		want += n
	}
	var out []telemetry.Message
	if want == 0 {
		return out
	}
	errDone := errors.New("done")
	err = f.stream.Read(ctx, hub, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
		out = append(out, m)
		if uint64(len(out)) == want {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		f.t.Fatalf("read %d of the %d messages on %s's built-in endpoint: %v", len(out), want, hub, err)
	}
	return out
}

// readEvents reads every event of an event hub (all partitions) from the
// start.
func (f *fixture) readEvents(ns, eh string) []eventhubs.Event {
	f.t.Helper()
	var out []eventhubs.Event
	for p := 0; p < 4; p++ {
		evs, err := f.eh.Read(f.ctx, ns, eh, "$Default", fmt.Sprint(p), 0, eventhubs.MaxReadBatch)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

func (f *fixture) health(hub, endpoint string) engine.EndpointHealth {
	for _, h := range f.engine.Health(hub) {
		if h.Name == endpoint {
			return h
		}
	}
	return engine.EndpointHealth{}
}

// consumerInfo reads a durable consumer, for tests that check what is kept.
func (f *fixture) pending(hub, endpoint string) uint64 {
	c, err := f.bus.JetStream().Consumer(f.ctx, f.bus.Stream("routing-"+hub), "ep-"+endpoint+"-0")
	if err != nil {
		return 0
	}
	info, err := c.Info(f.ctx)
	if err != nil {
		return 0
	}
	return info.NumPending + uint64(info.NumAckPending)
}
