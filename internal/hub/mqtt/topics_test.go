package mqtt

import (
	"maps"
	"net/url"
	"testing"
)

func TestParsePropertyBag(t *testing.T) {
	tests := []struct {
		bag  string
		want map[string]string
		bad  bool
	}{
		{"", map[string]string{}, false},
		{"%24.mid=mid-1&%24.ct=application%2Fjson&%24.ce=utf-8&myprop=v1",
			map[string]string{"$.mid": "mid-1", "$.ct": "application/json", "$.ce": "utf-8", "myprop": "v1"}, false},
		{"$.mid=raw&a+b=c+d", map[string]string{"$.mid": "raw", "a+b": "c+d"}, false}, // "+" is not a space
		{"prop1&prop2=&prop3=a%20string", map[string]string{"prop1": "", "prop2": "", "prop3": "a string"}, false},
		{"a=1&&a=2&", map[string]string{"a": "2"}, false},
		{"k=%E2%82%AC", map[string]string{"k": "€"}, false},
		{"=v", nil, true},
		{"k=%zz", nil, true},
		{"%=v", nil, true},
	}
	for _, tt := range tests {
		got, err := ParsePropertyBag(tt.bag)
		if (err != nil) != tt.bad || (!tt.bad && !maps.Equal(got, tt.want)) {
			t.Errorf("ParsePropertyBag(%q) = %v, %v; want %v", tt.bag, got, err, tt.want)
		}
	}
}

func TestEncodePropertyBag(t *testing.T) {
	got := EncodePropertyBag(map[string]string{
		"zeta": "1", "$.mid": "m/1", "alpha": "a b&c=d+e", "$.cid": "c",
	})
	want := "%24.cid=c&%24.mid=m%2F1&alpha=a%20b%26c%3Dd%2Be&zeta=1"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		username, clientID string
		host               string
		params             url.Values
		ok                 bool
	}{
		{"h/dev1/?api-version=2021-04-12&DeviceClientType=x%2F1", "dev1", "h", url.Values{"api-version": {"2021-04-12"}, "DeviceClientType": {"x/1"}}, true},
		{"h/dev1/mod1/?api-version=2021-04-12", "dev1/mod1", "h", url.Values{"api-version": {"2021-04-12"}}, true},
		{"h/dev1", "dev1", "h", url.Values{}, true},
		{"h/dev1/", "dev1", "h", url.Values{}, true},
		{"h/dev1/api-version=2016-11-14", "dev1", "h", url.Values{"api-version": {"2016-11-14"}}, true},
		{"h:8883/we?ird=id/?api-version=1", "we?ird=id", "h:8883", url.Values{"api-version": {"1"}}, true},
		{"h/dev1/mod1/?api-version=1", "dev1", "", nil, false}, // names a module, client id a device
		{"h/dev12/?api-version=1", "dev1", "", nil, false},
		{"h/dev2/?api-version=1", "dev1", "", nil, false},
		{"dev1", "dev1", "", nil, false},
		{"/dev1/", "dev1", "", nil, false},
	}
	for _, tt := range tests {
		host, params, ok := parseUsername(tt.username, tt.clientID)
		if ok != tt.ok || host != tt.host || (ok && !maps.EqualFunc(params, tt.params, func(a, b []string) bool { return a[0] == b[0] })) {
			t.Errorf("parseUsername(%q, %q) = %q, %v, %v", tt.username, tt.clientID, host, params, ok)
		}
	}
}

func TestClassifyPublish(t *testing.T) {
	dev := Identity{DeviceID: "dev1"}
	mod := Identity{DeviceID: "dev1", ModuleID: "m"}
	tests := []struct {
		id    Identity
		topic string
		kind  publishKind
		rid   string
	}{
		{dev, "devices/dev1/messages/events/", pubTelemetry, ""},
		{dev, "devices/dev1/messages/events", pubTelemetry, ""},
		{dev, "devices/dev1/messages/events/a=1/", pubTelemetry, ""},
		{mod, "devices/dev1/modules/m/messages/events/%24.on=o", pubTelemetry, ""},
		{dev, "$iothub/twin/GET/?$rid=1", pubTwinGet, "1"},
		{mod, "$iothub/twin/PATCH/properties/reported/?$rid=x%20y&$version=3", pubTwinReported, "x y"},
		{dev, "$iothub/methods/res/404/?$rid=9", pubMethodResponse, "9"},
		{dev, "devices/dev2/messages/events/", 0, ""},
		{mod, "devices/dev1/messages/events/", 0, ""},
		{dev, "devices/dev1/modules/m/messages/events/", 0, ""},
		{dev, "$iothub/twin/GET/", 0, ""},
		{dev, "$iothub/twin/GET/?rid=1", 0, ""},
		{dev, "$iothub/methods/res/ok/?$rid=1", 0, ""},
		{dev, "$iothub/twin/res/200/?$rid=1", 0, ""},
		{dev, "devices/dev1/messages/events/%zz", 0, ""},
	}
	for _, tt := range tests {
		p, err := classifyPublish(tt.id, tt.topic)
		if tt.kind == 0 {
			if err == nil {
				t.Errorf("classifyPublish(%q) accepted as %d", tt.topic, p.kind)
			}
			continue
		}
		if err != nil || p.kind != tt.kind || p.rid != tt.rid {
			t.Errorf("classifyPublish(%q) = %+v, %v", tt.topic, p, err)
		}
	}
}

// FuzzPropertyBag: the parser never panics, and whatever it accepts survives an encode/parse
// round trip unchanged.
func FuzzPropertyBag(f *testing.F) {
	for _, seed := range []string{
		"", "%24.mid=mid-1&%24.ct=application%2Fjson&%24.ce=utf-8&myprop=v1",
		"prop1&prop2=&prop3=a%20string", "a=%", "=", "&&&", "k=v=w", "%e2%82%ac=%F0%9F%98%80", "a+b=c%2Bd",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bag string) {
		props, err := ParsePropertyBag(bag)
		if err != nil {
			return
		}
		again, err := ParsePropertyBag(EncodePropertyBag(props))
		if err != nil {
			t.Fatalf("re-parse of the encoding of %q: %v", bag, err)
		}
		if !maps.Equal(props, again) {
			t.Fatalf("round trip of %q: %v became %v", bag, props, again)
		}
	})
}
