package serviceapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// MaxMessageBytes is IoT Hub's device-to-cloud message size limit.
const MaxMessageBytes = 256 << 10

// Publisher stores device-to-cloud messages durably.
type Publisher interface {
	PublishTelemetry(ctx context.Context, id deviceauth.Identity, m telemetry.Message) error
}

// headerSystemProps maps the HTTPS transport's headers to system properties.
var headerSystemProps = map[string]string{
	"iothub-messageid":       telemetry.PropMessageID,
	"iothub-correlationid":   telemetry.PropCorrelationID,
	"iothub-userid":          telemetry.PropUserID,
	"iothub-contenttype":     telemetry.PropContentType,
	"iothub-contentencoding": telemetry.PropContentEncoding,
	"iothub-interface-id":    telemetry.PropInterfaceID,
}

// deviceTelemetry serves POST /devices/{id}[/modules/{m}]/messages/events.
func (h *Handler) deviceTelemetry(w http.ResponseWriter, r *http.Request, deviceID, moduleID string) error {
	if r.Method != http.MethodPost {
		return &registry.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "Send telemetry with POST."}
	}
	id, err := h.devices.SAS(r.Context(), r.Host, deviceID, moduleID, r.Header.Get("Authorization"))
	var ae *deviceauth.Error
	if errors.As(err, &ae) {
		return &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess", Message: ae.Reason}
	}
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
	if err != nil {
		return decodeErr(err)
	}
	if len(body) > MaxMessageBytes {
		return &registry.Error{Status: http.StatusRequestEntityTooLarge, Code: "MessageTooLarge",
			Message: sprintf("The message is larger than the %d KB IoT Hub accepts; split it or upload it as a file.", MaxMessageBytes>>10)}
	}
	m := telemetry.Message{Hub: id.Hub.Name, DeviceID: deviceID, ModuleID: moduleID, Payload: body,
		System: map[string]string{}, App: map[string]string{}}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if _, ok := strings.CutPrefix(lk, "iothub-app-"); ok && len(vs) > 0 {
			// net/http canonicalizes header names, so names arrive lower-cased,
			// as they would over HTTP/2.
			m.App[lk[len("iothub-app-"):]] = vs[0]
			continue
		}
		if prop, ok := headerSystemProps[lk]; ok && len(vs) > 0 {
			m.System[prop] = vs[0]
		}
	}
	if err := h.publisher.PublishTelemetry(r.Context(), id, m); err != nil {
		return throttledError(w, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func decodeErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &registry.Error{Status: http.StatusRequestEntityTooLarge, Code: "MessageTooLarge", Message: sprintf("The request body is larger than %d bytes.", mbe.Limit)}
	}
	return err
}
