package fileupload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

const (
	// MaxConcurrentUploads is IoT Hub's limit of uploads in progress per
	// device.
	MaxConcurrentUploads = 10
	// MaxBlobNameLength is Azure Storage's blob name limit, in characters,
	// applied to the full name {deviceId}/{blobName}.
	MaxBlobNameLength = 1024
)

// Config holds a Service's dependencies.
type Config struct {
	Bus *bus.Bus
	// Egress carries every hub→storage call (*egress.Client).
	Egress Doer
	// Tokens mints the hub identity's storage tokens (*app.App).
	Tokens TokenSource
	Log    *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Service is IoT Hub file upload: SAS issuance, completion, notifications.
type Service struct {
	bus     *bus.Bus
	log     *slog.Logger
	now     func() time.Time
	storage *storage
	pending *pendingStore
	queue   *queue
}

// New builds the service. It does no I/O: the pending-upload bucket is made
// on first use and each hub's queue by EnsureHub.
func New(cfg Config) (*Service, error) {
	var missing []string
	if cfg.Bus == nil {
		missing = append(missing, "Bus")
	}
	if cfg.Egress == nil {
		missing = append(missing, "Egress")
	}
	if cfg.Tokens == nil {
		missing = append(missing, "Tokens")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("fileupload: new: missing %s", strings.Join(missing, ", "))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{bus: cfg.Bus, log: cfg.Log, now: cfg.Now,
		storage: newStorage(cfg.Egress, cfg.Tokens, cfg.Now), pending: &pendingStore{bus: cfg.Bus}}
	s.queue = &queue{svc: s, locks: map[string]heldMessage{}, holders: map[string]string{}, consumers: map[string]jetstream.Consumer{}}
	return s, nil
}

// StartResult is the answer to POST /devices/{id}/files.
type StartResult struct {
	CorrelationID string `json:"correlationId"`
	// HostName may carry a port and a path (path-style endpoints): devices
	// paste it verbatim into https://{hostName}/{containerName}/{blobName}{sasToken}.
	HostName      string `json:"hostName"`
	ContainerName string `json:"containerName"`
	BlobName      string `json:"blobName"`
	// SASToken starts with '?'.
	SASToken string `json:"sasToken"`
}

func argumentInvalid(format string, args ...any) *registry.Error {
	return &registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: fmt.Sprintf(format, args...)}
}

// validateBlobName refuses names that would escape the device's folder or
// that storage would refuse.
func validateBlobName(deviceID, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return argumentInvalid("blobName is required: send {\"blobName\":\"<name>\"}.")
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, "\\"):
		return argumentInvalid("blobName '%s' is an absolute path; send a name relative to the device's folder (the hub stores it as %s/<blobName>).", truncate(name), deviceID)
	case !utf8.ValidString(name):
		return argumentInvalid("blobName is not valid UTF-8.")
	}
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." || seg == "." {
			return argumentInvalid("blobName '%s' has a '%s' segment; relative path segments are not allowed.", truncate(name), seg)
		}
	}
	if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
		return argumentInvalid("blobName has a control character at byte %d; blob names are printable text.", i)
	}
	if n := utf8.RuneCountInString(deviceID) + 1 + utf8.RuneCountInString(name); n > MaxBlobNameLength {
		return argumentInvalid("The blob name %s/<blobName> would be %d characters; storage allows %d. Shorten blobName.", deviceID, n, MaxBlobNameLength)
	}
	return nil
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= 80 {
		return s
	}
	return string([]rune(s)[:80]) + "…"
}

// newCorrelationID is random and URL-safe: the Node SDK puts it in a path
// segment.
func newCorrelationID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Start issues a SAS URI for the device to upload {deviceId}/{blobName}
// into the hub's container, valid for the hub's sasTtl, and records the
// upload so any node can complete it.
func (s *Service) Start(ctx context.Context, h hub.Hub, deviceID, blobName string) (StartResult, error) {
	st, err := ParseSettings(h)
	if err != nil {
		return StartResult{}, err
	}
	if err := validateBlobName(deviceID, blobName); err != nil {
		return StartResult{}, err
	}
	full := deviceID + "/" + blobName
	now := s.now()
	expiry := now.Add(st.SASTTL)
	q, err := s.storage.blobSAS(ctx, st, h.ResourceID, full, expiry)
	if err != nil {
		return StartResult{}, s.storageError(h, st, "sign the upload SAS", err)
	}
	id := newCorrelationID()
	err = s.pending.add(ctx, h.Name, deviceID, id, upload{Container: st.Container, BlobName: full, Expiry: expiry}, MaxConcurrentUploads, now)
	if errors.Is(err, errTooManyUploads) {
		return StartResult{}, &registry.Error{Status: http.StatusForbidden, Code: "DeviceMaximumActiveFileUploadLimitExceeded",
			Message: fmt.Sprintf("Device %s already has %d file uploads in progress. Complete one (POST /devices/%s/files/notifications) or wait for its SAS to expire (sasTtl %s).", deviceID, MaxConcurrentUploads, deviceID, st.SASTTL)}
	}
	if err != nil {
		return StartResult{}, err
	}
	return StartResult{CorrelationID: id, HostName: st.HostName(), ContainerName: st.Container, BlobName: full, SASToken: "?" + q}, nil
}

// Complete records the device's report on an upload. On success, with
// notifications on, the hub reads the blob with its own credentials and
// queues a notification before answering; the upload is forgotten only
// after that, so a failure leaves the device free to report again.
func (s *Service) Complete(ctx context.Context, h hub.Hub, deviceID, correlationID string, isSuccess bool, statusCode int, description string) error {
	if correlationID == "" {
		return argumentInvalid("correlationId is required: send the correlationId POST /devices/%s/files returned.", deviceID)
	}
	now := s.now()
	u, expired, err := s.pending.get(ctx, h.Name, deviceID, correlationID, now)
	if errors.Is(err, errUnknownUpload) {
		if expired {
			_ = s.pending.remove(ctx, h.Name, deviceID, correlationID, now)
			return argumentInvalid("The file upload with correlation id '%s' expired at %s (its SAS TTL); start a new upload.", truncate(correlationID), u.Expiry.UTC().Format(time.RFC3339))
		}
		return argumentInvalid("No file upload of device %s has correlation id '%s': it was never issued, was already completed, or has expired. Start an upload with POST /devices/%s/files.", deviceID, truncate(correlationID), deviceID)
	}
	if err != nil {
		return err
	}
	if !isSuccess {
		s.log.Info("file upload reported failed", "hub", h.Name, "device", deviceID, "blob", u.BlobName, "statusCode", statusCode, "description", description)
	}
	if isSuccess && h.FileUpload.Notifications {
		st, err := ParseSettings(h)
		if err != nil {
			return err
		}
		// The container of the upload, even if the setting changed since.
		st.Container = u.Container
		size, modified, err := s.storage.blobProperties(ctx, st, h.ResourceID, u.Container, u.BlobName)
		if isBlobNotFound(err) {
			return argumentInvalid("The hub found no blob '%s' in container '%s' for correlation id '%s'; upload it with the SAS before reporting success (or report isSuccess false).", u.BlobName, u.Container, truncate(correlationID))
		}
		if err != nil {
			return s.storageError(h, st, "read the uploaded blob's properties", err)
		}
		n := Notification{DeviceID: deviceID, BlobURI: st.BlobURL(u.BlobName), BlobName: u.BlobName,
			LastUpdatedTime: modified, BlobSizeInBytes: size, EnqueuedTimeUTC: now.UTC()}
		if err := s.enqueue(ctx, h.Name, n); err != nil {
			return err
		}
	}
	err = s.pending.remove(ctx, h.Name, deviceID, correlationID, now)
	if errors.Is(err, errUnknownUpload) {
		// A concurrent completion of the same upload won; its answer stands
		// and so does this one (a notification may be queued twice).
		return nil
	}
	return err
}

// storageError turns a failed hub→storage call into the device's error:
// a 500 that says what the operator must fix, logged with the cause.
func (s *Service) storageError(h hub.Hub, st Settings, what string, err error) error {
	msg := describeStorageFailure(st, h.ResourceID, "", err)
	s.log.Warn("file upload: storage call failed", "hub", h.Name, "account", st.Account, "op", what, "err", err)
	return &registry.Error{Status: http.StatusInternalServerError, Code: "ServerError",
		Message: fmt.Sprintf("The hub could not %s in storage account '%s': %s", what, st.Account, msg)}
}
