package serviceapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// MethodInvoker runs direct methods on connected devices.
type MethodInvoker interface {
	InvokeMethod(ctx context.Context, hub, deviceID, moduleID, name string, payload json.RawMessage, timeout time.Duration) (devicemqtt.MethodResult, error)
}

var invokeMethod = access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/directMethods/invoke/action"}

// method serves POST /twins/{id}[/modules/{m}]/methods.
func (h *Handler) method(w http.ResponseWriter, r *http.Request, target hub.Hub, deviceID, moduleID string) error {
	if r.Method != http.MethodPost {
		return &registry.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "Invoke a method with POST."}
	}
	if err := h.authorize(r, target, invokeMethod); err != nil {
		return err
	}
	if err := h.allow(w, throttle.Method, target.Name, deviceID); err != nil {
		return err
	}
	var in struct {
		MethodName               string          `json:"methodName"`
		Payload                  json.RawMessage `json:"payload"`
		ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
		ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.MethodName == "" {
		return &registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: "methodName is required."}
	}
	timeout := 30 * time.Second
	if in.ResponseTimeoutInSeconds > 0 {
		if in.ResponseTimeoutInSeconds < 5 || in.ResponseTimeoutInSeconds > 300 {
			return &registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: "responseTimeoutInSeconds must be between 5 and 300."}
		}
		timeout = time.Duration(in.ResponseTimeoutInSeconds) * time.Second
	}
	if _, err := h.registry.GetIdentity(r.Context(), target.Name, deviceID, moduleID); err != nil {
		return err
	}
	res, err := h.methods.InvokeMethod(r.Context(), target.Name, deviceID, moduleID, in.MethodName, in.Payload, timeout)
	var me *devicemqtt.MethodError
	if errors.As(err, &me) {
		return &registry.Error{Status: me.Status, Code: me.Code, Message: me.Message}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res, "")
}
