package serviceapi

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// C2D is what the HTTPS device endpoints need of the cloud-to-device queue.
type C2D interface {
	Receive(r *http.Request, id deviceauth.Identity) (*c2d.Message, error)
	Settle(lockToken, how string) error
}

// deviceBound serves the HTTPS transport's cloud-to-device calls:
// GET …/messages/devicebound (receive), DELETE …/devicebound/{lock}
// (complete, or reject with ?reject), POST …/devicebound/{lock}/abandon.
func (h *Handler) deviceBound(w http.ResponseWriter, r *http.Request, deviceID, moduleID string, rest []string) error {
	id, err := h.devices.SAS(r.Context(), r.Host, deviceID, moduleID, r.Header.Get("Authorization"))
	var ae *deviceauth.Error
	if errors.As(err, &ae) {
		return &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess", Message: ae.Reason}
	}
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		m, err := h.c2d.Receive(r, id)
		if err != nil {
			return err
		}
		if m == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		hd := w.Header()
		hd.Set("ETag", `"`+m.LockToken+`"`)
		set := func(k, v string) {
			if v != "" {
				hd.Set(k, v)
			}
		}
		set("iothub-messageid", m.MessageID)
		set("iothub-correlationid", m.CorrelationID)
		set("iothub-userid", m.UserID)
		set("iothub-contenttype", m.ContentType)
		set("iothub-contentencoding", m.ContentEncoding)
		set("iothub-to", "/devices/"+url.PathEscape(deviceID)+"/messages/devicebound")
		hd.Set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
		if !m.Expiry.IsZero() {
			hd.Set("iothub-expiry", m.Expiry.UTC().Format(time.RFC3339))
		}
		hd.Set("iothub-enqueuedtime", m.Enqueued.UTC().Format(time.RFC1123))
		for k, v := range m.App {
			hd.Set("iothub-app-"+k, v)
		}
		w.WriteHeader(http.StatusOK)
		_, err = w.Write(m.Payload)
		return err
	case len(rest) == 1 && r.Method == http.MethodDelete:
		how := "complete"
		if _, ok := r.URL.Query()["reject"]; ok {
			how = "reject"
		}
		return h.settle(w, rest[0], how)
	case len(rest) == 2 && rest[1] == "abandon" && r.Method == http.MethodPost:
		return h.settle(w, rest[0], "abandon")
	}
	return &registry.Error{Status: http.StatusNotFound, Code: "NotFound", Message: sprintf("No device endpoint at %s %s.", r.Method, r.URL.Path)}
}

func (h *Handler) settle(w http.ResponseWriter, lock, how string) error {
	lock = trimQuotes(lock)
	if err := h.c2d.Settle(lock, how); err != nil {
		return &registry.Error{Status: http.StatusPreconditionFailed, Code: "DeviceMessageLockLost",
			Message: "The message's lock token is unknown or its lock expired; receive the message again."}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
