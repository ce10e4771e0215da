package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/testenv"
)

func openBus(t *testing.T, external bool) *bus.Bus {
	t.Helper()
	cfg := bus.Config{StoreDir: t.TempDir()}
	if external {
		cfg = bus.Config{URL: testenv.NATSURL(t), StreamPrefix: testenv.StreamPrefix(t)}
	}
	b, err := bus.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func TestPublishAndRead(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprintf("external=%v", external), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := telemetry.New(openBus(t, external), time.Now)
			if err := s.EnsureHub(ctx, "Hub1", 1); err != nil {
				t.Fatal(err)
			}
			if err := s.EnsureHub(ctx, "hub1", 2); err != nil {
				t.Fatalf("EnsureHub is not idempotent: %v", err)
			}
			const n = 100
			// Messages stored for the router never show on the built-in
			// endpoint (Read) by themselves.
			for i := range 10 {
				if _, err := s.Publish(ctx, 4, telemetry.PathRouter, telemetry.Message{Hub: "hub1", DeviceID: "routed",
					System: map[string]string{telemetry.PropMessageID: fmt.Sprint("routed-", i)}}); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < n; i++ {
				dev := fmt.Sprintf("dev%d", i%7)
				m, err := s.Publish(ctx, 4, telemetry.PathBuiltIn, telemetry.Message{Hub: "hub1", DeviceID: dev, Payload: []byte(fmt.Sprint(i)),
					System: map[string]string{telemetry.PropMessageID: fmt.Sprint("mid-", i), telemetry.PropContentType: "application/json"},
					App:    map[string]string{"temp": fmt.Sprint(i), "odd key/é": "v"}})
				if err != nil {
					t.Fatal(err)
				}
				if m.Partition != telemetry.Partition(dev, 4) || m.Sequence == 0 {
					t.Fatalf("published %+v", m)
				}
			}
			var got []telemetry.Message
			errDone := errors.New("done")
			err := s.Read(ctx, "hub1", telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
				got = append(got, m)
				if len(got) == n {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				t.Fatalf("read %d of %d: %v", len(got), n, err)
			}
			seen := map[string]bool{}
			for _, m := range got {
				seen[m.System[telemetry.PropMessageID]] = true
				if m.DeviceID == "routed" {
					t.Fatalf("a message stored for the router is on the built-in endpoint: %+v", m)
				}
				if m.App["odd key/é"] != "v" || m.App["temp"] == "" || m.System[telemetry.PropMessageSource] != "Telemetry" ||
					m.System[telemetry.PropContentType] != "application/json" || m.Enqueued.IsZero() || m.DeviceID == "" {
					t.Fatalf("message lost properties: %+v", m)
				}
				if m.Partition != telemetry.Partition(m.DeviceID, 4) {
					t.Fatalf("partition %d for %s", m.Partition, m.DeviceID)
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct messages, want %d", len(seen), n)
			}
			if err := s.RemoveHub(ctx, "hub1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Publish(ctx, 4, telemetry.PathBuiltIn, telemetry.Message{Hub: "hub1", DeviceID: "d"}); err == nil {
				t.Error("publish to a removed hub succeeded")
			}
		})
	}
}

// TestPathFor: device messages go straight to the built-in endpoint only
// while the routing settings send every one of them there.
func TestPathFor(t *testing.T) {
	const fallbackOn = `"fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}`
	for _, tc := range []struct {
		routing string
		want    telemetry.Path
	}{
		{``, telemetry.PathBuiltIn},
		{`null`, telemetry.PathBuiltIn},
		{`{}`, telemetry.PathBuiltIn},
		{`{"routes":[],` + fallbackOn + `}`, telemetry.PathBuiltIn},
		{`{"routes":[],"fallbackRoute":{"condition":"","endpointNames":["Events"],"isEnabled":true}}`, telemetry.PathBuiltIn},
		// Routes of other sources don't change where device messages go.
		{`{"routes":[{"name":"t","source":"TwinChangeEvents","condition":"true","endpointNames":["events"],"isEnabled":true}],` + fallbackOn + `}`, telemetry.PathBuiltIn},
		{`{"routes":[{"name":"off","source":"DeviceMessages","condition":"true","endpointNames":["hot"],"isEnabled":false}],` + fallbackOn + `}`, telemetry.PathBuiltIn},
		{`{"routes":[{"name":"on","source":"DeviceMessages","condition":"true","endpointNames":["hot"],"isEnabled":true}],` + fallbackOn + `}`, telemetry.PathRouter},
		{`{"routes":[{"name":"on","source":"devicemessages","condition":"true","endpointNames":["events"],"isEnabled":true}]}`, telemetry.PathRouter},
		{`{"routes":[],"fallbackRoute":{"condition":"true","endpointNames":["events"],"isEnabled":false}}`, telemetry.PathRouter},
		{`{"routes":[],"fallbackRoute":{"condition":"level = 'x'","endpointNames":["events"],"isEnabled":true}}`, telemetry.PathRouter},
		{`{"routes":"not a list"}`, telemetry.PathRouter},
	} {
		if got := telemetry.PathFor([]byte(tc.routing)); got != tc.want {
			t.Errorf("PathFor(%s) = %d, want %d", tc.routing, got, tc.want)
		}
	}
}

// TestSourcesFor: only the event sources an enabled route reads are
// stored; settings that don't decode keep them all.
func TestSourcesFor(t *testing.T) {
	cases := []struct {
		routing                     string
		twin, lifecycle, connection bool
	}{
		{``, false, false, false},
		{`null`, false, false, false},
		{`{"routes":[{"name":"t","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}]}`, false, false, false},
		{`{"routes":[{"name":"t","source":"TwinChangeEvents","condition":"true","endpointNames":["events"],"isEnabled":true}]}`, true, false, false},
		{`{"routes":[{"name":"t","source":"twinchangeevents","isEnabled":false},{"name":"l","source":"DeviceLifecycleEvents","isEnabled":true}]}`, false, true, false},
		{`{"routes":[{"name":"c","source":"DeviceConnectionStateEvents","isEnabled":true},{"name":"t","source":"TwinChangeEvents","isEnabled":true}]}`, true, false, true},
		{`{"routes":"not a list"}`, true, true, true},
	}
	for _, c := range cases {
		s := telemetry.SourcesFor(json.RawMessage(c.routing))
		if s.Has(telemetry.SourceTwinChange) != c.twin || s.Has(telemetry.SourceLifecycle) != c.lifecycle || s.Has(telemetry.SourceConnectionState) != c.connection {
			t.Errorf("%s: twin %v lifecycle %v connection %v, want %v %v %v", c.routing,
				s.Has(telemetry.SourceTwinChange), s.Has(telemetry.SourceLifecycle), s.Has(telemetry.SourceConnectionState), c.twin, c.lifecycle, c.connection)
		}
	}
}
