package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMaxConnections: past the cap a CONNECT gets CONNACK 3 (server
// unavailable) while the connected devices keep working, and a slot freed
// by a disconnect is taken again.
func TestMaxConnections(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f := newTestServer(t, func(f *fixture) { f.cfg.MaxConnections = 3 })
	f.srv.SetMetrics(m)
	var clients []paho.Client
	for i := range 3 {
		c, _ := f.connect(fmt.Sprintf("dev%d", i))
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	codes := make([]byte, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = f.connectCode(f.clientOptions(fmt.Sprintf("flood%d", i)))
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != connackServerUnavailable {
			t.Errorf("connection %d beyond the cap: CONNACK %d, want 3", i, c)
		}
	}
	publishOK(t, clients[0], "devices/dev0/messages/events/", 1, []byte("still served"))
	if got := testutil.ToFloat64(m.refusedConn.WithLabelValues("3")); got != 20 {
		t.Errorf("refused connections counted %v, want 20", got)
	}
	if got := testutil.ToFloat64(m.connections); got != 3 {
		t.Errorf("connections gauge %v, want 3", got)
	}
	clients[2].Disconnect(0)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if code := f.connectCode(f.clientOptions("dev-after")); code != connackAccepted {
			return fmt.Errorf("after a disconnect: CONNACK %d", code)
		}
		return nil
	})
}

// TestPublishMetrics counts received, acknowledged and refused publishes,
// with the refusal reason the Reason hook names.
func TestPublishMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	errBusy := errors.New("over the rate")
	m.Reason = func(err error) string {
		if errors.Is(err, errBusy) {
			return "throttled"
		}
		return ""
	}
	var mu sync.Mutex
	n := 0
	f := newTestServer(t, func(f *fixture) {
		f.h.telemetry = func(ctx context.Context, id Identity, msg Message) error {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n > 2 {
				return errBusy
			}
			return nil
		}
	})
	f.srv.SetMetrics(m)
	c, lost := f.connect("dev1")
	publishOK(t, c, "devices/dev1/messages/events/", 1, []byte("1"))
	publishOK(t, c, "devices/dev1/messages/events/", 1, []byte("2"))
	c.Publish("devices/dev1/messages/events/", 1, false, []byte("3"))
	lost.wait(t, 5*time.Second)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if got := testutil.ToFloat64(m.refused.WithLabelValues("throttled")); got != 1 {
			return fmt.Errorf("refused(throttled) %v, want 1", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(m.received.WithLabelValues("telemetry")); got != 3 {
		t.Errorf("received %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.acked.WithLabelValues("telemetry")); got != 2 {
		t.Errorf("acknowledged %v, want 2", got)
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if got := testutil.ToFloat64(m.connections); got != 0 {
			return fmt.Errorf("connections gauge %v after the device left", got)
		}
		return nil
	})
}
