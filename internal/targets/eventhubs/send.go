package eventhubs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// EventData is one event to send.
type EventData struct {
	Body []byte
	// Properties are user properties: strings, numbers and booleans.
	Properties    map[string]any
	PartitionKey  string
	ContentType   string
	MessageID     string
	CorrelationID string
	Subject       string
	// rawProperties are user properties already in JSON (the REST path
	// keeps what the client sent instead of decoding and re-encoding it).
	rawProperties map[string]json.RawMessage
}

// SendRequest is a send of one or more events to an event hub.
type SendRequest struct {
	Events []EventData
	// PartitionID sends every event to this partition (no partition keys).
	PartitionID string
	// Publisher is the publisher name of /publishers/{name}/messages: it is
	// the partition key of every event.
	Publisher string
}

// batchContentType marks a REST batch.
const batchContentType = "application/vnd.microsoft.servicebus.json"

// batchOverhead is how much larger than the event limit a batch request may
// be before it is refused unread: JSON framing and escaping.
const batchOverhead = 64 * 1024

// readEvents reads a REST send body: one event (custom properties as
// headers, BrokerProperties header) or a JSON batch.
func (h *Handler) readEvents(r *http.Request, limit int) ([]EventData, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	batch := strings.EqualFold(mt, batchContentType)
	readLimit := int64(limit)
	if batch {
		readLimit = 2*int64(limit) + batchOverhead
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, readLimit+1))
	if err != nil {
		return nil, fmt.Errorf("eventhubs: read body: %w", err)
	}
	if int64(len(body)) > readLimit {
		return nil, errTooLarge(int64(len(body)), limit, batch)
	}
	if batch {
		return parseBatch(body, limit)
	}
	ev := EventData{Body: body, ContentType: r.Header.Get("Content-Type")}
	if bp := r.Header.Get("BrokerProperties"); bp != "" {
		var b brokerProperties
		if err := json.Unmarshal([]byte(bp), &b); err != nil {
			return nil, errorf(http.StatusBadRequest, "The BrokerProperties header is not valid JSON: %v. Send e.g. {\"PartitionKey\":\"device-1\"}.", err)
		}
		ev.applyBroker(b)
	}
	ev.rawProperties = headerProperties(r.Header)
	return []EventData{ev}, nil
}

func (e *EventData) applyBroker(b brokerProperties) {
	e.PartitionKey, e.MessageID, e.CorrelationID, e.Subject = b.PartitionKey, b.MessageID, b.CorrelationID, b.Label
	if b.ContentType != "" {
		e.ContentType = b.ContentType
	}
}

func errTooLarge(size int64, limit int, batch bool) error {
	what := "message"
	if batch {
		what = "batch"
	}
	return errorf(http.StatusRequestEntityTooLarge,
		"The received %s (size: %d bytes) exceeds the limit (%d bytes) currently allowed on the entity. Send smaller events or split the batch: the limit is 1 MB on Standard and Premium namespaces and 256 KB on Basic.",
		what, size, limit)
}

// notProperties are request headers that are HTTP or Azure plumbing, never
// custom properties of a single-event send.
var notProperties = map[string]bool{
	"Authorization": true, "Content-Type": true, "Content-Length": true, "Content-Encoding": true, "Host": true,
	"Brokerproperties": true, "User-Agent": true, "Accept": true, "Accept-Encoding": true, "Accept-Language": true,
	"Connection": true, "Expect": true, "Date": true, "Transfer-Encoding": true, "Te": true, "Traceparent": true,
	"Tracestate": true, "Request-Id": true, "Cookie": true, "Origin": true, "Referer": true, "Cache-Control": true,
	"Pragma": true, "Keep-Alive": true, "Upgrade": true, "Via": true, "Forwarded": true, "Proxy-Authorization": true,
}

// headerProperties turns the custom-property headers of a single send into
// properties. A value that is JSON (a quoted string, a number, true/false)
// keeps its type, as the service reads "Priority: \"High\"" and
// "Count: 3"; anything else is a string.
func headerProperties(hdr http.Header) map[string]json.RawMessage {
	var props map[string]json.RawMessage
	for k, vs := range hdr {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if len(vs) == 0 || notProperties[ck] || strings.HasPrefix(ck, "X-Ms-") || strings.HasPrefix(ck, "X-Forwarded-") {
			continue
		}
		v := strings.TrimSpace(vs[0])
		var val any
		var raw json.RawMessage
		if json.Unmarshal([]byte(v), &val) == nil {
			switch val.(type) {
			case string, float64, bool:
				raw = json.RawMessage(v)
			}
		}
		if raw == nil {
			b, _ := json.Marshal(v)
			raw = b
		}
		if props == nil {
			props = map[string]json.RawMessage{}
		}
		props[k] = raw
	}
	return props
}

// batchItem is one element of a REST batch.
type batchItem struct {
	Body             *string                    `json:"Body"`
	IsBodyBase64     bool                       `json:"IsBodyBase64"`
	UserProperties   map[string]json.RawMessage `json:"UserProperties"`
	BrokerProperties *brokerProperties          `json:"BrokerProperties"`
}

func parseBatch(body []byte, limit int) ([]EventData, error) {
	var items []batchItem
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, errorf(http.StatusBadRequest,
			"The batch is not valid: %v. Send a JSON array of {\"Body\": \"<string>\", \"UserProperties\": {…}, \"BrokerProperties\": {\"PartitionKey\": \"…\"}} with Content-Type %s.", err, batchContentType)
	}
	if len(items) == 0 {
		return nil, errorf(http.StatusBadRequest, "The batch is empty; send at least one event.")
	}
	events := make([]EventData, len(items))
	total := 0
	for i, it := range items {
		if it.Body == nil {
			return nil, errorf(http.StatusBadRequest, "Batch element %d has no Body; every element needs \"Body\": \"<string>\".", i)
		}
		ev := EventData{Body: []byte(*it.Body), rawProperties: it.UserProperties}
		if it.IsBodyBase64 {
			b, err := base64.StdEncoding.DecodeString(*it.Body)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "Batch element %d has IsBodyBase64 but its Body is not base64: %v.", i, err)
			}
			ev.Body = b
		}
		for k, v := range it.UserProperties {
			// The array decode validated the JSON; only the kind is checked.
			if len(v) > 0 && (v[0] == '{' || v[0] == '[') {
				return nil, errorf(http.StatusBadRequest, "Batch element %d: user property '%s' must be a string, number or boolean, not %s.", i, k, v)
			}
		}
		if it.BrokerProperties != nil {
			ev.applyBroker(*it.BrokerProperties)
		}
		total += ev.size()
		events[i] = ev
	}
	if total > limit {
		return nil, errTooLarge(int64(total), limit, true)
	}
	return events, nil
}

// size is what counts against the event limit: body, key and properties.
func (e *EventData) size() int {
	n := len(e.Body) + len(e.PartitionKey)
	for k, v := range e.rawProperties {
		n += len(k) + len(v)
	}
	for k, v := range e.Properties {
		n += len(k) + len(fmt.Sprint(v))
	}
	return n
}

// incoming converts the event for storage.
func (e *EventData) incoming() (incoming, error) {
	in := incoming{body: e.Body, properties: e.rawProperties, partitionKey: e.PartitionKey, contentType: e.ContentType,
		broker: brokerProperties{MessageID: e.MessageID, CorrelationID: e.CorrelationID, Label: e.Subject}}
	if len(e.Properties) > 0 {
		props := make(map[string]json.RawMessage, len(e.rawProperties)+len(e.Properties))
		for k, v := range e.rawProperties {
			props[k] = v
		}
		for k, v := range e.Properties {
			b, err := json.Marshal(v)
			if err != nil {
				return incoming{}, errorf(http.StatusBadRequest, "The property '%s' can't be stored: %v.", k, err)
			}
			props[k] = b
		}
		in.properties = props
	}
	return in, nil
}

// Send stores events in an event hub without checking credentials (the
// caller has): the operation behind REST send, for in-process senders.
// It returns once every event is durably stored.
func (h *Handler) Send(ctx context.Context, namespace, eventhub string, req SendRequest) error {
	ns, err := h.dir.get(ctx, namespace)
	if err != nil {
		return fmt.Errorf("eventhubs: load namespace %s: %w", namespace, err)
	}
	if ns == nil {
		return errorf(http.StatusNotFound, "The namespace '%s' does not exist.", namespace)
	}
	eh, ok := ns.EventHub(eventhub)
	resource := "sb://" + ehresource.Host(ns.Name, h.cfg.DNSSuffix) + "/" + eventhub
	if !ok {
		return errorf(http.StatusNotFound, "The messaging entity '%s' could not be found.", resource)
	}
	limit := ns.MaxEventBytes()
	total := 0
	for i := range req.Events {
		total += req.Events[i].size()
	}
	if total > limit {
		return errTooLarge(int64(total), limit, len(req.Events) > 1)
	}
	return h.send(ctx, ns, eh, resource, req)
}

// send partitions, stamps and stores the events of one request.
func (h *Handler) send(ctx context.Context, ns *ehresource.NamespaceView, eh *ehresource.EventHubView, resource string, req SendRequest) error {
	switch eh.Status {
	case ehresource.StatusDisabled, ehresource.StatusSendDisabled:
		return errorf(http.StatusForbidden, "The messaging entity '%s' is disabled for sending (status %s). Set the event hub's properties.status to Active.", resource, eh.Status)
	}
	fixed := -1
	if req.PartitionID != "" {
		p, err := strconv.Atoi(req.PartitionID)
		if err != nil || p < 0 || p >= eh.PartitionCount {
			return errorf(http.StatusBadRequest,
				"The specified partition '%s' is invalid for an EventHub partition sender or receiver. It should be between 0 and %d.", req.PartitionID, eh.PartitionCount-1)
		}
		fixed = p
	}
	// Events without a key share one partition per request, so a REST batch
	// stays together, as the service keeps a batch on one partition.
	rr := int(h.roundRobin.Add(1) % uint64(max(eh.PartitionCount, 1)))
	enqueued := h.now().UTC().Format(time.RFC3339Nano)
	msgs := make([]outgoing, 0, len(req.Events))
	for i := range req.Events {
		ev := &req.Events[i]
		key := ev.PartitionKey
		if req.Publisher != "" {
			if key != "" && key != req.Publisher {
				return errorf(http.StatusBadRequest, "The partition key '%s' differs from the publisher '%s': a publisher's name is its events' partition key.", key, req.Publisher)
			}
			key = req.Publisher
		}
		p := rr
		switch {
		case fixed >= 0 && key != "":
			return errorf(http.StatusBadRequest, "An event sent to partition %d can't have a partition key ('%s'): use one or the other.", fixed, key)
		case fixed >= 0:
			p = fixed
		case key != "":
			if len(key) > 128 {
				return errorf(http.StatusBadRequest, "The partition key is %d characters long; at most 128 are allowed.", len(key))
			}
			p = PartitionForKey(key, eh.PartitionCount)
		}
		ev.PartitionKey = key
		in, err := ev.incoming()
		if err != nil {
			return err
		}
		subj := h.cfg.Streams.bus.Subject(subject(ns.Name, eh.Name, p))
		msgs = append(msgs, outgoing{partition: p, msg: in.message(subj, enqueued, req.Publisher)})
	}
	spec := ehresource.EventHubSpec{Namespace: ns.Name, Name: eh.Name, PartitionCount: eh.PartitionCount, Retention: eh.Retention}
	err := h.cfg.Streams.publish(ctx, msgs, func(ctx context.Context) error {
		h.cfg.Log.Warn("event hub streams missing; creating them", "namespace", ns.Name, "eventhub", eh.Name)
		return h.cfg.Streams.EnsureEventHub(ctx, spec)
	})
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return errorf(http.StatusServiceUnavailable,
			"The send did not complete in time; some events may have been stored. Retry the request (Event Hubs delivery is at least once).")
	}
	return err
}
