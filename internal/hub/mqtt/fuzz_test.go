package mqtt

import (
	"strings"
	"testing"
)

// FuzzDeviceTopics runs what a CONNECT and the PUBLISH and SUBSCRIBE
// after it carry through the parsers that decide whose topics they are:
// an accepted client id names one device (and module), an accepted
// username names a host and that client id, and an accepted topic or
// filter lies in that identity's own topic space and nobody else's.
func FuzzDeviceTopics(f *testing.F) {
	for _, s := range [][3]string{
		{"dev1", "hub.example/dev1/?api-version=2021-04-12&DeviceClientType=c", "devices/dev1/messages/events/%24.ct=application%2Fjson&a=b"},
		{"dev1/mod1", "hub.example/dev1/mod1/api-version=2018-06-30", "devices/dev1/modules/mod1/messages/events/"},
		{"dev1", "hub.example/dev1", "$iothub/twin/GET/?$rid=1"},
		{"dev1", "hub.example/dev1/", "$iothub/twin/PATCH/properties/reported/?$rid=2&$version=3"},
		{"dev1", "hub.example/dev1", "$iothub/methods/res/200/?$rid=abc"},
		{"dev1", "hub.example/dev1", "devices/dev1/messages/devicebound/#"},
		{"dev1/mod1", "hub.example/dev1/mod1", "devices/dev1/modules/mod1/inputs/#"},
		{"a?b=c", "h/a?b=c/?x=1", "devices/a?b=c/messages/events"},
		{"dev1", "hub.example/dev1", "devices/dev2/messages/events/"},
		{"dev1", "hub.example/dev1", "devices/+/messages/devicebound/#"},
		{"dev1/", "/dev1", "$iothub/methods/res/abc/?$rid=1"},
		{"dev1/a/b", "h/dev1/a/b", "devices/dev1/messages/eventsX"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, clientID, username, topic string) {
		deviceID, moduleID, ok := parseClientID(clientID)
		if !ok {
			return
		}
		joined := deviceID
		if moduleID != "" {
			joined += "/" + moduleID
		}
		if joined != clientID || deviceID == "" || strings.Contains(deviceID, "/") || strings.Contains(moduleID, "/") {
			t.Fatalf("parseClientID(%q) = %q, %q", clientID, deviceID, moduleID)
		}
		if host, _, ok := parseUsername(username, clientID); ok && (host == "" || strings.Contains(host, "/") || !strings.HasPrefix(username, host+"/"+clientID)) {
			t.Fatalf("parseUsername(%q, %q) = host %q", username, clientID, host)
		}
		id := Identity{Hub: "hub.example", DeviceID: deviceID, ModuleID: moduleID}
		own := devicePrefix(id)
		if p, err := classifyPublish(id, topic); err == nil {
			switch p.kind {
			case pubTelemetry:
				if !strings.HasPrefix(topic, own+"messages/events") {
					t.Fatalf("%s may publish telemetry to %q", clientID, topic)
				}
			case pubTwinGet, pubTwinReported, pubMethodResponse:
				if p.rid == "" || !strings.HasPrefix(topic, "$iothub/") {
					t.Fatalf("classifyPublish(%q) = %+v", topic, p)
				}
			default:
				t.Fatalf("classifyPublish(%q) = kind %d", topic, p.kind)
			}
		}
		switch allowedSubscription(id, topic) {
		case subNone, subTwinResponses, subDesired, subMethods:
		default:
			if !strings.HasPrefix(topic, own) || strings.Contains(topic, "+") || strings.Index(topic, "#") != len(topic)-1 {
				t.Fatalf("%s may subscribe to %q", clientID, topic)
			}
		}
	})
}
