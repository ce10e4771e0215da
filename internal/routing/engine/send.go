package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/sas"
)

// batchContentType marks an Event Hubs / Service Bus REST batch.
const batchContentType = "application/vnd.microsoft.servicebus.json"

// SendError is a target's refusal of a send, kept as the endpoint's last
// error: "401 from https://ns.servicebus.…/eh: Unauthorized access. …".
type SendError struct {
	Status int
	URL    string
	Detail string
}

func (e *SendError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%d from %s", e.Status, e.URL)
	}
	return fmt.Sprintf("%d from %s: %s", e.Status, e.URL, e.Detail)
}

// messagingSender sends REST batches to Event Hubs and Service Bus.
type messagingSender struct {
	egress Doer
	tokens *tokenCache
	now    func() time.Time
}

// restItem is one element of a REST batch.
type restItem struct {
	Body             string            `json:"Body"`
	IsBodyBase64     bool              `json:"IsBodyBase64,omitempty"`
	UserProperties   map[string]any    `json:"UserProperties,omitempty"`
	BrokerProperties map[string]string `json:"BrokerProperties,omitempty"`
}

func (s *messagingSender) send(ctx context.Context, hubID string, ep *Endpoint, batch []*queued) error {
	items := make([]restItem, len(batch))
	for i, q := range batch {
		items[i] = restBatchItem(ep.Kind, q)
	}
	body, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("engine: encode batch: %w", err)
	}
	target := ep.EntityURL + "/messages"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("engine: request to %s: %w", ep.EntityURL, err)
	}
	req.Header.Set("Content-Type", batchContentType)
	if ep.IdentityBased {
		tok, err := s.tokens.token(ctx, hubID, ep.UserAssigned, ep.Audience())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	} else {
		req.Header.Set("Authorization", sas.SignRawKey(ep.EntityURL, ep.Key, ep.KeyName, s.now().Add(time.Hour)))
	}
	resp, err := s.egress.Do(req)
	if err != nil {
		return fmt.Errorf("send to %s: %w", ep.EntityURL, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		return nil
	}
	detail := errorDetail(answer)
	if resp.StatusCode == http.StatusUnauthorized && ep.IdentityBased &&
		(strings.Contains(detail, "InvalidToken") || strings.Contains(detail, "ExpiredToken")) {
		s.tokens.invalidate(hubID, ep.UserAssigned, ep.Audience())
	}
	return &SendError{Status: resp.StatusCode, URL: ep.EntityURL, Detail: detail}
}

// errorDetail extracts the message of an Event Hubs / Service Bus error
// (<Error><Code>…</Code><Detail>…</Detail></Error>) without its tracking
// suffix; other bodies are returned trimmed.
func errorDetail(body []byte) string {
	s := string(body)
	if _, after, ok := strings.Cut(s, "<Detail>"); ok {
		s, _, _ = strings.Cut(after, "</Detail>")
		s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&#39;", "'", "&quot;", `"`).Replace(s)
	}
	if i := strings.Index(s, " TrackingId:"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return s
}

// restBatchItem maps a routed message to a REST batch element, with IoT
// Hub's system properties under the names each service shows them
// (azure-wire §4.3): Event Hubs keeps the AMQP names and the enqueued time
// as epoch milliseconds; Service Bus takes message id, correlation id and
// content type as broker properties. Event Hubs' partition key is the
// device id, so a device's messages stay in order on one partition.
func restBatchItem(kind string, q *queued) restItem {
	m := &q.m
	it := restItem{UserProperties: make(map[string]any, len(m.App)+8), BrokerProperties: map[string]string{}}
	if utf8.Valid(m.Payload) {
		it.Body = string(m.Payload)
	} else {
		it.Body, it.IsBodyBase64 = base64.StdEncoding.EncodeToString(m.Payload), true
	}
	for k, v := range m.App {
		it.UserProperties[k] = v
	}
	set := func(name, prop string) {
		if v := m.System[prop]; v != "" {
			it.UserProperties[name] = v
		}
	}
	set(telemetry.PropDeviceID, telemetry.PropDeviceID)
	set(telemetry.PropModuleID, telemetry.PropModuleID)
	set(telemetry.PropAuthMethod, telemetry.PropAuthMethod)
	set(telemetry.PropGenerationID, telemetry.PropGenerationID)
	set(telemetry.PropInterfaceID, telemetry.PropInterfaceID)
	set(telemetry.PropComponent, telemetry.PropComponent)
	source := q.source
	if source == "" {
		source = telemetry.SourceTelemetry
	}
	it.UserProperties[telemetry.PropMessageSource] = source
	if id := m.System[telemetry.PropMessageID]; id != "" {
		it.BrokerProperties["MessageId"] = id
	}
	if id := m.System[telemetry.PropCorrelationID]; id != "" {
		it.BrokerProperties["CorrelationId"] = id
	}
	if ct := m.System[telemetry.PropContentType]; ct != "" {
		it.BrokerProperties["ContentType"] = ct
	}
	if kind == KindEventHubs {
		it.BrokerProperties["PartitionKey"] = m.DeviceID
		it.UserProperties[telemetry.PropEnqueuedTime] = m.Enqueued.UnixMilli()
		set(telemetry.PropUserID, telemetry.PropUserID)
		set(telemetry.PropContentType, telemetry.PropContentType)
		set(telemetry.PropContentEncoding, telemetry.PropContentEncoding)
		set(telemetry.PropMessageID, telemetry.PropMessageID)
		set(telemetry.PropCorrelationID, telemetry.PropCorrelationID)
	} else {
		set("UserId", telemetry.PropUserID)
		set("ContentEncoding", telemetry.PropContentEncoding)
		it.UserProperties[telemetry.PropEnqueuedTime] = m.Enqueued.UTC().Format(time.RFC3339Nano)
	}
	if len(it.BrokerProperties) == 0 {
		it.BrokerProperties = nil
	}
	return it
}
