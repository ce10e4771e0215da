package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// throttledTwins is the MQTT handler with the hub's twin throttles in
// front of the device side of twins: over the rate a twin request is
// answered on $iothub/twin/res/429/, as IoT Hub answers it, and the
// connection stays up. Everything else is the session hub's.
type throttledTwins struct {
	*devicemqtt.Hub
	limits *throttle.Limiter
}

func (t throttledTwins) TwinGet(ctx context.Context, id mqtt.Identity, rid string) mqtt.TwinResponse {
	if err := t.limits.Allow(throttle.TwinRead, id.Hub, id.DeviceID); err != nil {
		return twinThrottled(err)
	}
	return t.Hub.TwinGet(ctx, id, rid)
}

func (t throttledTwins) TwinReported(ctx context.Context, id mqtt.Identity, rid string, patch []byte) mqtt.TwinResponse {
	if err := t.limits.Allow(throttle.TwinUpdate, id.Hub, id.DeviceID); err != nil {
		return twinThrottled(err)
	}
	return t.Hub.TwinReported(ctx, id, rid, patch)
}

// twinThrottled is IoT Hub's MQTT twin error for a throttled request
// (429001 ThrottlingException); the SDKs retry it.
func twinThrottled(err error) mqtt.TwinResponse {
	b, _ := json.Marshal(map[string]any{"errorCode": 429001, "message": err.Error()})
	return mqtt.TwinResponse{Status: http.StatusTooManyRequests, Body: b}
}

// defaultMaxDeviceConnections sizes the device connection cap from the
// open-file limit: three quarters of it, leaving the rest to HTTPS, AMQP,
// the store, the bus and the blob files. Unknown or unlimited: no cap.
func defaultMaxDeviceConnections(log *slog.Logger) int {
	n, ok := openFileLimit()
	if !ok || n <= 0 || n > 1<<30 {
		log.Info("device connections are not capped (open-file limit unknown); set --max-device-connections")
		return 0
	}
	return max(int(n*3/4), 1)
}

const busyMessage = "The server is busy: this node handles its maximum of requests at once (--max-inflight-requests). Retry shortly."

// amqpAdmission applies the device connection cap to AMQP connections to
// a hub: one is admitted while the node's MQTT device connections and its
// hub AMQP connections together are under the cap. (The MQTT server
// counts only its own, so MQTT alone may still fill the cap.)
type amqpAdmission struct {
	mqtt *mqtt.Server
	max  int
	open atomic.Int64
}

func (b *amqpAdmission) admit() (release func(), ok bool) {
	if b.max <= 0 {
		return func() {}, true
	}
	mqttConns, _ := b.mqtt.Connections()
	if int64(mqttConns)+b.open.Add(1) > int64(b.max) {
		b.open.Add(-1)
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { b.open.Add(-1) }) }, true
}

// serverBusy answers a request the node has no room for (more than
// --max-inflight-requests at once) with 503 and Retry-After, in the error
// shape of the API the request is for, so each client retries it as its
// own busy error.
func (a *App) serverBusy(w http.ResponseWriter, r *http.Request) {
	const msg = busyMessage
	h := w.Header()
	h.Set("Retry-After", "1")
	host := r.Host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	host = strings.ToLower(host)
	first := strings.ToLower(strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0])
	now := time.Now().UTC()
	switch {
	case host == "blob."+a.cfg.DNSSuffix || a.isBlobHost(r):
		storageBusy(w, r)
	case strings.HasSuffix(host, ".servicebus."+a.cfg.DNSSuffix) || host == "servicebus."+a.cfg.DNSSuffix:
		// Event Hubs and Service Bus REST: <Error><Code>503</Code><Detail>…
		h.Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "<Error><Code>503</Code><Detail>%s TrackingId:%s_G0, SystemTracker:%s, Timestamp:%s</Detail></Error>",
			msg, h.Get("x-ms-request-id"), host, now.Format("2006-01-02T15:04:05"))
	case strings.Contains(strings.ToLower(r.URL.Path), "/oauth2/"):
		// The token endpoints: OAuth2's temporarily_unavailable.
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "temporarily_unavailable", "error_description": msg})
	case slices.Contains(serviceapi.Segments, first):
		// IoT Hub's data plane (device and service REST).
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("iothub-errorcode", "ServerBusy")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"Message":          "ErrorCode:ServerBusy;" + msg,
			"ExceptionMessage": "Tracking ID:" + strconv.FormatInt(now.UnixNano(), 36) + "-TimeStamp:" + now.Format("01/02/2006 15:04:05"),
		})
	default:
		// The resource manager, Outpost's own API and the portal: ARM's
		// envelope (ARM clients retry 503 with Retry-After).
		arm.WriteError(w, arm.Errorf(http.StatusServiceUnavailable, "ServerBusy", "%s", msg))
	}
}

// storageBusy is Azure Storage's 503 ServerBusy (the path-style blob
// listener answers every request with it when full).
func storageBusy(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Retry-After", "1")
	h.Set("x-ms-error-code", "ServerBusy")
	h.Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>`+busyMessage+
			"\nRequestId:"+h.Get("x-ms-request-id")+"\nTime:"+time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")+"</Message></Error>")
	}
}

// ClusterNodes is how many live nodes this node shares the per-hub
// throttles with (itself included).
func (a *App) ClusterNodes() int { return a.hub.limits.Nodes() }
