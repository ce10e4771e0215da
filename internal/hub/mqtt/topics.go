package mqtt

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// IoT Hub's topic space is closed: a device may publish to and subscribe to only the names in
// this file. Everything is matched literally (no wildcard matching is ever needed, because the
// only filters allowed are the documented ones).

const (
	twinResponseFilter = "$iothub/twin/res/#"
	desiredFilter      = "$iothub/twin/PATCH/properties/desired/#"
	methodsFilter      = "$iothub/methods/POST/#"

	twinGetPrefix      = "$iothub/twin/GET/"
	twinReportedPrefix = "$iothub/twin/PATCH/properties/reported/"
	methodResPrefix    = "$iothub/methods/res/"
)

// subscription is one of the topic filters a device may subscribe to.
type subscription uint8

const (
	subNone          subscription = iota
	subC2D                        // devices/{d}/messages/devicebound/#
	subTwinResponses              // $iothub/twin/res/#
	subDesired                    // $iothub/twin/PATCH/properties/desired/#
	subMethods                    // $iothub/methods/POST/#
	subModuleInputs               // devices/{d}/modules/{m}/inputs/# (module clients enable it)
	subModuleAll                  // devices/{d}/modules/{m}/#       (documented for modules)
)

// devicePrefix is "devices/{d}/" or "devices/{d}/modules/{m}/".
func devicePrefix(id Identity) string {
	if id.ModuleID != "" {
		return "devices/" + id.DeviceID + "/modules/" + id.ModuleID + "/"
	}
	return "devices/" + id.DeviceID + "/"
}

// allowedSubscription maps a topic filter to the subscription it names for this identity, or
// subNone when IoT Hub would refuse it (SUBACK 0x80).
func allowedSubscription(id Identity, filter string) subscription {
	switch filter {
	case twinResponseFilter:
		return subTwinResponses
	case desiredFilter:
		return subDesired
	case methodsFilter:
		return subMethods
	}
	p := devicePrefix(id)
	if id.ModuleID == "" {
		if filter == p+"messages/devicebound/#" {
			return subC2D
		}
		return subNone
	}
	switch filter {
	case p + "inputs/#":
		return subModuleInputs
	case p + "#":
		return subModuleAll
	}
	return subNone
}

// publishKind classifies a device PUBLISH.
type publishKind uint8

const (
	pubTelemetry publishKind = iota + 1
	pubTwinGet
	pubTwinReported
	pubMethodResponse
)

// devicePublish is a parsed device PUBLISH topic.
type devicePublish struct {
	kind       publishKind
	properties map[string]string // telemetry: the decoded property bag
	rid        string            // twin and method responses
	status     int               // method responses
}

var errForbiddenTopic = errors.New("topic not allowed for this device")

// classifyPublish checks a device PUBLISH topic against the identity's closed topic space.
func classifyPublish(id Identity, topic string) (devicePublish, error) {
	if strings.HasPrefix(topic, "$iothub/") {
		return classifyIoTHubPublish(topic)
	}
	events := devicePrefix(id) + "messages/events"
	rest, ok := strings.CutPrefix(topic, events)
	if !ok {
		return devicePublish{}, errForbiddenTopic
	}
	if rest == "" || rest == "/" {
		return devicePublish{kind: pubTelemetry, properties: map[string]string{}}, nil
	}
	bag, ok := strings.CutPrefix(rest, "/")
	if !ok {
		return devicePublish{}, errForbiddenTopic // "messages/eventsX"
	}
	// The Node SDK appends "/" after the bag for module output events; some clients put "?"
	// before it as on the C2D side.
	bag = strings.TrimPrefix(strings.TrimSuffix(bag, "/"), "?")
	props, err := ParsePropertyBag(bag)
	if err != nil {
		return devicePublish{}, err
	}
	return devicePublish{kind: pubTelemetry, properties: props}, nil
}

func classifyIoTHubPublish(topic string) (devicePublish, error) {
	switch {
	case strings.HasPrefix(topic, twinGetPrefix):
		rid, err := requestID(topic[len(twinGetPrefix):])
		return devicePublish{kind: pubTwinGet, rid: rid}, err
	case strings.HasPrefix(topic, twinReportedPrefix):
		rid, err := requestID(topic[len(twinReportedPrefix):])
		return devicePublish{kind: pubTwinReported, rid: rid}, err
	case strings.HasPrefix(topic, methodResPrefix):
		status, query, ok := strings.Cut(topic[len(methodResPrefix):], "/")
		if !ok {
			return devicePublish{}, errForbiddenTopic
		}
		code, err := strconv.Atoi(status)
		if err != nil || code < 0 || code > 999 {
			return devicePublish{}, fmt.Errorf("method response status %q is not an integer", status)
		}
		rid, err := requestID(query)
		return devicePublish{kind: pubMethodResponse, rid: rid, status: code}, err
	}
	return devicePublish{}, errForbiddenTopic
}

// requestID reads $rid from "?$rid=…[&…]".
func requestID(query string) (string, error) {
	q, ok := strings.CutPrefix(query, "?")
	if !ok {
		return "", errors.New("request topic has no ?$rid=")
	}
	props, err := ParsePropertyBag(q)
	if err != nil {
		return "", err
	}
	rid := props["$rid"]
	if rid == "" {
		return "", errors.New("request topic has no $rid")
	}
	return rid, nil
}

// ParsePropertyBag decodes an IoT Hub property bag ("k1=v1&k2&k3=") as the device SDKs encode
// it: each name and value percent-encoded (encodeURIComponent). "+" stays "+", as it does for
// the SDKs' decoders. A name without "=" maps to "". A later duplicate name wins. A bag with a
// bad escape or an empty name is an error.
func ParsePropertyBag(bag string) (map[string]string, error) {
	props := make(map[string]string, strings.Count(bag, "&")+1)
	for pair := range strings.SplitSeq(bag, "&") {
		if pair == "" {
			continue // "a=1&&b=2", or a trailing "&"
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.PathUnescape(rawName)
		if err != nil {
			return nil, fmt.Errorf("property bag name %q: %w", rawName, err)
		}
		if name == "" {
			return nil, fmt.Errorf("property bag entry %q has no name", pair)
		}
		value, err := url.PathUnescape(rawValue)
		if err != nil {
			return nil, fmt.Errorf("property bag value of %q: %w", name, err)
		}
		props[name] = value
	}
	return props, nil
}

// EncodePropertyBag encodes properties for a topic: system properties first, then application
// properties, each group sorted by name, every name and value percent-encoded so that no "/",
// "&", "=", "+" or "$" survives literally (the SDKs split the topic on "/" before decoding).
func EncodePropertyBag(props map[string]string) string {
	if len(props) == 0 {
		return ""
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		si, sj := IsSystemProperty(names[i]), IsSystemProperty(names[j])
		if si != sj {
			return si
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escapeComponent(name))
		b.WriteByte('=')
		b.WriteString(escapeComponent(props[name]))
	}
	return b.String()
}

// escapeComponent percent-encodes everything but ALPHA / DIGIT / "-" / "." / "_" / "~".
func escapeComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// deliveryTopic builds the topic for a server-to-device delivery, and which subscription the
// device needs for it.
func deliveryTopic(id Identity, d Delivery) (string, subscription, error) {
	switch d.Kind {
	case DeliverC2D:
		if id.ModuleID != "" {
			return "", subNone, fmt.Errorf("%w: modules have no cloud-to-device queue", ErrInvalidDelivery)
		}
		return "devices/" + id.DeviceID + "/messages/devicebound/" + EncodePropertyBag(d.Properties), subC2D, nil
	case DeliverDesiredPatch:
		return "$iothub/twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(d.Version, 10), subDesired, nil
	case DeliverMethodRequest:
		if d.MethodName == "" || strings.ContainsAny(d.MethodName, "/#+?") || d.RequestID == "" {
			return "", subNone, fmt.Errorf("%w: method name %q, request id %q", ErrInvalidDelivery, d.MethodName, d.RequestID)
		}
		return "$iothub/methods/POST/" + d.MethodName + "/?$rid=" + escapeComponent(d.RequestID), subMethods, nil
	}
	return "", subNone, fmt.Errorf("%w: unknown kind %d", ErrInvalidDelivery, d.Kind)
}

// twinResponseTopic is $iothub/twin/res/{status}/?$rid={rid}[&$version={v}].
func twinResponseTopic(rid string, r TwinResponse) string {
	t := "$iothub/twin/res/" + strconv.Itoa(r.Status) + "/?$rid=" + escapeComponent(rid)
	if r.Version != 0 {
		t += "&$version=" + strconv.FormatInt(r.Version, 10)
	}
	return t
}

// parseClientID splits "{deviceId}" or "{deviceId}/{moduleId}".
func parseClientID(clientID string) (deviceID, moduleID string, ok bool) {
	deviceID, moduleID, hasModule := strings.Cut(clientID, "/")
	if deviceID == "" || (hasModule && (moduleID == "" || strings.Contains(moduleID, "/"))) {
		return "", "", false
	}
	return deviceID, moduleID, true
}

// parseUsername checks that the username names the client id's device and returns the host
// and the query. Accepted forms:
//
//	{host}/{clientId}
//	{host}/{clientId}/
//	{host}/{clientId}/?api-version=…&DeviceClientType=…
//	{host}/{clientId}/api-version=…            (older SDKs, no "?")
//
// The client id is compared verbatim rather than split out of the username, because device
// ids may contain "?" and "=".
func parseUsername(username, clientID string) (host string, params url.Values, ok bool) {
	host, rest, ok := strings.Cut(username, "/")
	if !ok || host == "" {
		return "", nil, false
	}
	after, ok := strings.CutPrefix(rest, clientID)
	if !ok {
		return "", nil, false
	}
	var query string
	switch {
	case after == "" || after == "/":
	case strings.HasPrefix(after, "/?"):
		query = after[2:]
	case strings.HasPrefix(after, "/api-version="):
		query = after[1:]
	default:
		return "", nil, false
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, false
	}
	return host, params, true
}
