package telemetry

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Path is where a device message is stored when it arrives.
//
// The built-in "events" endpoint is the events.{partition} subjects of the
// hub's stream. A hub whose routing settings send every device message
// there (no enabled DeviceMessages route, the fallback route on — IoT
// Hub's default) stores them there directly: no router on the way, nothing
// stored twice. Once a route reads device messages (or the fallback route
// is off), whether a message reaches the built-in endpoint depends on the
// routes, so it is stored on route.{partition} and the hub's router
// copies it to events.{partition} when a route to "events" or the fallback
// route takes it — as IoT Hub stops default delivery once routes exist.
type Path int

const (
	// PathBuiltIn stores device messages on the built-in endpoint.
	PathBuiltIn Path = iota
	// PathRouter stores device messages for the hub's router.
	PathRouter
)

// PathFor decides a hub's path from its stored properties.routing (nil or
// empty: a hub without routing settings, IoT Hub's default). Settings that
// don't decode take the router path, which is right for any settings.
func PathFor(routing json.RawMessage) Path {
	if len(routing) == 0 || string(routing) == "null" {
		return PathBuiltIn
	}
	var r struct {
		Routes []struct {
			Source    string `json:"source"`
			IsEnabled bool   `json:"isEnabled"`
		} `json:"routes"`
		FallbackRoute *struct {
			Condition     string   `json:"condition"`
			EndpointNames []string `json:"endpointNames"`
			IsEnabled     bool     `json:"isEnabled"`
		} `json:"fallbackRoute"`
	}
	if err := json.Unmarshal(routing, &r); err != nil {
		return PathRouter
	}
	for _, rt := range r.Routes {
		if rt.IsEnabled && strings.EqualFold(rt.Source, "DeviceMessages") {
			return PathRouter
		}
	}
	fb := r.FallbackRoute
	if fb == nil {
		return PathBuiltIn // stored before routing existed: fallback on
	}
	if !fb.IsEnabled {
		return PathRouter // unmatched messages are dropped: the router decides
	}
	if c := strings.TrimSpace(fb.Condition); c != "" && !strings.EqualFold(c, "true") {
		return PathRouter
	}
	for _, n := range fb.EndpointNames {
		if !strings.EqualFold(n, "events") {
			return PathRouter
		}
	}
	return PathBuiltIn
}

// Sources is the set of event sources (SourceTwinChange, SourceLifecycle,
// SourceConnectionState) an enabled route reads.
type Sources uint8

// Has says whether source is in the set.
func (s Sources) Has(source string) bool { return s&sourceBit(source) != 0 }

func sourceBit(source string) Sources {
	for i, src := range EventSources() {
		if strings.EqualFold(src, source) {
			return 1 << i
		}
	}
	return 0
}

// allSources is every event source.
const allSources = Sources(1<<3 - 1)

// SourcesFor is the set of event sources a hub's routes read, from its
// stored properties.routing: the others' events are not stored at all, as
// nothing would deliver them. Settings that don't decode read them all.
func SourcesFor(routing json.RawMessage) Sources {
	if len(routing) == 0 || string(routing) == "null" {
		return 0
	}
	var r struct {
		Routes []struct {
			Source    string `json:"source"`
			IsEnabled bool   `json:"isEnabled"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(routing, &r); err != nil {
		return allSources
	}
	var s Sources
	for _, rt := range r.Routes {
		if rt.IsEnabled {
			// Routes name a source as TwinChangeEvents; events carry
			// twinChangeEvents.
			s |= sourceBit(rt.Source)
		}
	}
	return s
}

// subject is the logical subject a device message of partition is stored
// on for path.
func (p Path) subject(hub string, partition int) string {
	kind := "events"
	if p == PathRouter {
		kind = "route"
	}
	return "hub." + strings.ToLower(hub) + "." + kind + "." + strconv.Itoa(partition)
}

// BuiltInSubject is the logical subject of a partition of the built-in
// endpoint, where the router copies the messages routed there.
func BuiltInSubject(hub string, partition int) string {
	return PathBuiltIn.subject(hub, partition)
}

// RouterPartitionSubject is the logical subject of the device messages of
// one partition stored for the router.
func RouterPartitionSubject(hub string, partition int) string {
	return PathRouter.subject(hub, partition)
}

// SourceSubject is the logical subject of one source's non-telemetry
// events (SourceTwinChange, SourceLifecycle, SourceConnectionState).
func SourceSubject(hub, source string) string {
	return "hub." + strings.ToLower(hub) + ".route." + source
}

// EventSources are the sources of the non-telemetry events stored for the
// router, in a fixed order.
func EventSources() []string {
	return []string{SourceTwinChange, SourceLifecycle, SourceConnectionState}
}

// RouterSubject is the logical subject filter of everything the hub's
// router reads: route.{partition} (device messages stored for it) and
// route.{source} (twin change, lifecycle and connection state events). One
// filter, not two: NATS servers before 2.10 allow one filter per consumer.
func RouterSubject(hub string) string { return "hub." + strings.ToLower(hub) + ".route.*" }
