package hubamqp

import (
	"errors"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// FuzzLinkAddress feeds link addresses and CBS audiences to their parsers:
// an address is refused with an AMQP error or names an endpoint (a
// device's with its device id), and an audience names a lower-case host
// and, for a module, its device.
func FuzzLinkAddress(f *testing.F) {
	for _, s := range []string{
		"/messages/devicebound", "amqps://hub.example/messages/serviceBound/feedback", "/messages/servicebound/filenotifications",
		"/devices/d1/messages/events", "/devices/d%2F1/modules/m1/messages/events", "/DEVICES/d1/methods/devicebound", "/devices/d1/twin",
		"/devices//messages/events", "/messages/events", "hub.example", "sb://hub.example:5671/devices/d1/modules/m1/",
		"hub.example%2Fdevices%2Fd1", "[::1]:5671/devices/d1", "https://hub.example/.default", "%zz", "",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, addr string, clientSends bool) {
		r, err := parseAddress(addr, clientSends)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Condition == "" {
				t.Fatalf("parseAddress(%q): %T %v, want a *wire.Error", addr, err, err)
			}
		} else {
			switch r.ep {
			case epC2DSend, epFeedback, epFileNotifications:
				if r.deviceID != "" || r.moduleID != "" {
					t.Fatalf("parseAddress(%q) = %+v", addr, r)
				}
			case epTelemetry, epDeviceBound, epMethods, epTwin:
				if r.deviceID == "" {
					t.Fatalf("parseAddress(%q) = %+v without a device", addr, r)
				}
			default:
				t.Fatalf("parseAddress(%q) = %+v", addr, r)
			}
		}
		host, deviceID, moduleID, ok := parseAudience(addr)
		if !ok {
			return
		}
		if host == "" && deviceID == "" || host != strings.ToLower(host) || (moduleID != "" && deviceID == "") ||
			strings.Contains(deviceID, "/") || strings.Contains(moduleID, "/") {
			t.Fatalf("parseAudience(%q) = %q, %q, %q", addr, host, deviceID, moduleID)
		}
	})
}
