package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/routing/engine"
	"github.com/outpost-iot/outpost/internal/routing/query"
)

// buildRouting builds the message routing engine: route conditions in the
// routing query language, twins from the registry, delivery through the
// egress client with the hubs' identities.
func (a *App) buildRouting() error {
	rt, err := engine.New(engine.Config{
		Bus: a.bus, Resources: a.store.Resources(), Egress: a.targets.egress, Tokens: a,
		Compile: compileCondition, Twins: routingTwins{a.hub.registry},
		Log: a.log.With("component", "routing"), MinBatchFrequency: a.cfg.Hub.RoutingMinBatchFrequency,
		UnhealthyAfter: a.cfg.Hub.RoutingUnhealthyAfter, MetricsBucket: a.cfg.Hub.RoutingMetricsBucket,
		RetryBase: a.cfg.Hub.RoutingRetryBase, RetryMax: a.cfg.Hub.RoutingRetryMax,
		Owns: a.ownsRoutingSlot,
	})
	if err != nil {
		return fmt.Errorf("app: routing: %w", err)
	}
	a.hub.routing = rt
	a.metrics.MustRegister(routingCollector{rt})
	return nil
}

// ownsRoutingSlot says whether this node routes a slot (partition or
// event source) of a hub: the live nodes share them out (Membership.Owns);
// a node without other nodes (no shared NATS) routes them all.
func (a *App) ownsRoutingSlot(hub string, slot int) bool {
	if a.hub.members == nil {
		return true
	}
	return a.hub.members.Owns(hub, slot)
}

// compileCondition compiles a route condition in the routing query
// language.
func compileCondition(s string) (engine.Condition, error) {
	c, err := query.Compile(s)
	if err != nil {
		return nil, err
	}
	return queryCondition{c}, nil
}

type queryCondition struct{ c *query.Condition }

// matchInput is the query language's evaluation input for the message it
// was last reset for; the router carries it in Message.Scratch, so the
// routes of one message share one parse of its body and the next message
// reuses the buffers.
type matchInput struct {
	in  *query.Input
	msg *engine.Message
}

func (q queryCondition) Match(m *engine.Message) bool {
	st, ok := m.Scratch.(*matchInput)
	if !ok {
		st = &matchInput{in: query.NewInput(routedMessage{m}), msg: m}
		m.Scratch = st
	} else if st.msg != m {
		st.in.Reset(routedMessage{m})
		st.msg = m
	}
	return q.c.Eval(st.in) == query.True
}

// routedMessage shows a routed message to the query language: application
// properties as sent, system properties by their routing keywords.
type routedMessage struct{ m *engine.Message }

// systemHeader is the stamped system property a routing keyword names.
func systemHeader(keyword string) (string, bool) {
	switch keyword {
	case query.SysMessageID:
		return telemetry.PropMessageID, true
	case query.SysCorrelationID:
		return telemetry.PropCorrelationID, true
	case query.SysUserID:
		return telemetry.PropUserID, true
	case query.SysContentType:
		return telemetry.PropContentType, true
	case query.SysContentEncoding:
		return telemetry.PropContentEncoding, true
	case query.SysConnectionDeviceGenerationID:
		return telemetry.PropGenerationID, true
	case query.SysConnectionAuthMethod:
		return telemetry.PropAuthMethod, true
	case query.SysEnqueuedTime:
		return telemetry.PropEnqueuedTime, true
	case query.SysDTDataSchema:
		return telemetry.PropInterfaceID, true
	case query.SysDTSubject:
		return telemetry.PropComponent, true
	}
	return "", false
}

func (r routedMessage) AppProperty(name string) (string, bool) {
	return query.LookupFold(r.m.App, name)
}

func (r routedMessage) SystemProperty(name string) (string, bool) {
	switch name {
	case query.SysConnectionDeviceID:
		return r.m.DeviceID, r.m.DeviceID != ""
	case query.SysConnectionModuleID:
		return r.m.ModuleID, r.m.ModuleID != ""
	}
	if h, ok := systemHeader(name); ok {
		return query.LookupFold(r.m.System, h)
	}
	return query.LookupFold(r.m.System, name)
}

func (r routedMessage) Body() []byte { return r.m.Payload }

func (r routedMessage) Twin() []byte { return nil }

// routingTwins reads twins for $twin enrichments.
type routingTwins struct{ r *registry.Service }

func (t routingTwins) Twin(ctx context.Context, hub, deviceID, moduleID string) ([]byte, error) {
	tw, err := t.r.GetTwin(ctx, hub, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return json.Marshal(tw)
}
