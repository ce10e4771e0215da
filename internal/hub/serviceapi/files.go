package serviceapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// FileUploads is what the file upload endpoints need (*fileupload.Service).
type FileUploads interface {
	Start(ctx context.Context, h hub.Hub, deviceID, blobName string) (fileupload.StartResult, error)
	Complete(ctx context.Context, h hub.Hub, deviceID, correlationID string, isSuccess bool, statusCode int, description string) error
	Receive(ctx context.Context, h hub.Hub, wait time.Duration) (*fileupload.Notification, string, error)
	Settle(ctx context.Context, lockToken string, how fileupload.Settlement) error
}

// fileNotifications is the right a service needs to read file upload
// notifications: ServiceConnect, or the data action the IoT Hub data roles
// grant for it.
var fileNotifications = access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/fileUpload/notifications/action"}

// fileNotificationWait is how long a receive waits for a notification
// before answering 204, short enough for a polling client's timeout.
const fileNotificationWait = 5 * time.Second

// maxFileRequestBytes bounds the small JSON bodies of the file endpoints.
const maxFileRequestBytes = 64 << 10

// authenticateDevice authenticates a device-side call as deviceTelemetry
// does (device key or DeviceConnect policy SAS covering the device).
func (h *Handler) authenticateDevice(r *http.Request, deviceID string) (deviceauth.Identity, error) {
	id, err := h.devices.SAS(r.Context(), r.Host, deviceID, "", r.Header.Get("Authorization"))
	var ae *deviceauth.Error
	if errors.As(err, &ae) {
		return deviceauth.Identity{}, &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess", Message: ae.Reason}
	}
	return id, err
}

func (h *Handler) fileUploadsConfigured() error {
	if h.files == nil {
		return &registry.Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "File upload is not enabled in this Outpost."}
	}
	return nil
}

// fileStart serves POST /devices/{id}/files: {"blobName":"…"} →
// {correlationId, hostName, containerName, blobName, sasToken}.
func (h *Handler) fileStart(w http.ResponseWriter, r *http.Request, deviceID string) error {
	id, err := h.authenticateDevice(r, deviceID)
	if err != nil {
		return err
	}
	if err := h.fileUploadsConfigured(); err != nil {
		return err
	}
	var in struct {
		BlobName string `json:"blobName"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFileRequestBytes)
	if err := decode(r, &in); err != nil {
		return err
	}
	res, err := h.files.Start(r.Context(), id.Hub, deviceID, in.BlobName)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res, "")
}

// fileComplete serves POST /devices/{id}/files/notifications (correlationId
// in the body, as the docs and most SDKs send it) and
// POST /devices/{id}/files/notifications/{correlationId} (the Node SDK).
func (h *Handler) fileComplete(w http.ResponseWriter, r *http.Request, deviceID, correlationID string) error {
	id, err := h.authenticateDevice(r, deviceID)
	if err != nil {
		return err
	}
	if err := h.fileUploadsConfigured(); err != nil {
		return err
	}
	var in struct {
		CorrelationID     string `json:"correlationId"`
		IsSuccess         bool   `json:"isSuccess"`
		StatusCode        int    `json:"statusCode"`
		StatusDescription string `json:"statusDescription"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFileRequestBytes)
	if err := decode(r, &in); err != nil {
		return err
	}
	if correlationID == "" {
		correlationID = in.CorrelationID
	}
	if err := h.files.Complete(r.Context(), id.Hub, deviceID, correlationID, in.IsSuccess, in.StatusCode, in.StatusDescription); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// fileNotificationsAPI serves the service side of file notifications over
// HTTPS. IoT Hub delivers them only over AMQP
// (/messages/serviceBound/filenotifications, served by hubamqp); this is
// Outpost's own REST shape for tools, modelled on the HTTPS device
// transport's cloud-to-device receive:
//
//	GET    /messages/servicebound/filenotifications                  200 + JSON and ETag: "{lock}", or 204
//	DELETE /messages/servicebound/filenotifications/{lock}           complete, 204
//	POST   /messages/servicebound/filenotifications/{lock}/abandon   abandon, 204
func (h *Handler) fileNotificationsAPI(w http.ResponseWriter, r *http.Request, target hub.Hub, rest []string) error {
	if err := h.authorize(r, target, fileNotifications); err != nil {
		return err
	}
	if err := h.fileUploadsConfigured(); err != nil {
		return err
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		n, lock, err := h.files.Receive(r.Context(), target, fileNotificationWait)
		if err != nil {
			return err
		}
		if n == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		hd := w.Header()
		hd.Set("iothub-messagelocktoken", lock)
		hd.Set("iothub-deliverycount", strconv.Itoa(n.DeliveryCount))
		hd.Set("iothub-enqueuedtime", n.EnqueuedTimeUTC.UTC().Format(time.RFC1123))
		return writeJSON(w, http.StatusOK, n, lock)
	case len(rest) == 1 && r.Method == http.MethodDelete:
		return h.settleFileNotification(w, r, rest[0], fileupload.Complete)
	case len(rest) == 2 && rest[1] == "abandon" && r.Method == http.MethodPost:
		return h.settleFileNotification(w, r, rest[0], fileupload.Abandon)
	}
	return &registry.Error{Status: http.StatusNotFound, Code: "NotFound", Message: sprintf("No file notification endpoint at %s %s.", r.Method, r.URL.Path)}
}

func (h *Handler) settleFileNotification(w http.ResponseWriter, r *http.Request, lock string, how fileupload.Settlement) error {
	if err := h.files.Settle(r.Context(), trimQuotes(lock), how); err != nil {
		if errors.Is(err, fileupload.ErrLockLost) {
			return &registry.Error{Status: http.StatusPreconditionFailed, Code: "DeviceMessageLockLost",
				Message: "The notification's lock token is unknown or its lock expired; receive the notification again (locks are held by the Outpost node that delivered it)."}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
