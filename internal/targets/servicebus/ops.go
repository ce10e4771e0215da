package servicebus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// Message size limits: 256 KB on Basic and Standard; Premium allows more,
// bounded here by what one JetStream message carries by default (1 MB).
const (
	maxStandardMessage = 256 * 1024
	maxPremiumMessage  = 1000 * 1024
)

// batchContentType marks a batch send.
const batchContentType = "application/vnd.microsoft.servicebus.json"

// headers that are HTTP's own, never custom properties.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Content-Type": true, "Content-Length": true, "Host": true, "User-Agent": true,
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Connection": true, "Brokerproperties": true,
	"Expect": true, "Transfer-Encoding": true, "Date": true, "Cookie": true, "Origin": true, "Referer": true,
	"Traceparent": true, "Tracestate": true, "Request-Id": true, "Keep-Alive": true, "Te": true, "Upgrade": true,
	"Cache-Control": true, "Pragma": true, "Content-Encoding": true,
}

func (h *Handler) maxMessage(req *request) int {
	if strings.EqualFold(req.ns.sku, "Premium") {
		return maxPremiumMessage
	}
	return maxStandardMessage
}

// send stores a message (or a batch) on a queue, or on every subscription
// of a topic whose rules match; 201 once JetStream has every copy.
func (h *Handler) send(w http.ResponseWriter, req *request) error {
	r := req.r
	status := req.entitySettings().Status
	if status == "Disabled" || status == "SendDisabled" {
		return fail(http.StatusForbidden, "MessagingEntityDisabled: The messaging entity '%s' is %s; set its status to Active.", req.entity, status)
	}
	limit := h.maxMessage(req)
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return fail(http.StatusBadRequest, "The request body could not be read: %v.", err)
	}
	if len(body) > limit {
		return fail(http.StatusForbidden, "MessageSizeExceeded: The message is larger than %d bytes, the limit of the namespace's %s tier. Send smaller messages or split the batch.", limit, req.ns.sku)
	}
	var msgs []*Message
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.EqualFold(mt, batchContentType) {
		if msgs, err = parseBatch(body); err != nil {
			return err
		}
	} else {
		m, err := parseSingle(r, body)
		if err != nil {
			return err
		}
		msgs = []*Message{m}
	}
	now := h.cfg.Now().UTC()
	for _, m := range msgs {
		if err := h.stamp(req, m, now); err != nil {
			return err
		}
	}
	if _, err := h.store(r.Context(), req.ns, req.queue, req.topic, msgs, time.Time{}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// store publishes stamped messages to a queue, or to every subscription of
// a topic whose rules match, and returns once JetStream has every copy.
// REST and AMQP sends both end here. With at set the messages are
// scheduled instead (schedule.go), and the answer is each message's
// sequence number (of its first copy; 0 when no subscription matched).
func (h *Handler) store(ctx context.Context, ns *namespaceView, queue *queueView, topic *topicView, msgs []*Message, at time.Time) ([]uint64, error) {
	seqs := make([]uint64, len(msgs))
	var group string // names the copies of one scheduled message
	put := func(i int, t target) error {
		var seq uint64
		var err error
		if at.IsZero() {
			seq, err = h.broker.publish(ctx, t, msgs[i])
		} else {
			seq, err = h.broker.schedule(ctx, t, msgs[i], at, group)
		}
		if seqs[i] == 0 {
			seqs[i] = seq
		}
		return err
	}
	for i, m := range msgs {
		group = uuid.NewString()
		if queue != nil {
			if err := put(i, queueTarget(ns.name, queue.name, queue.settings)); err != nil {
				return nil, err
			}
			continue
		}
		// Filters run at send time; a copy goes to each matching
		// subscription (none matching is not an error, as in Service Bus).
		for _, s := range topic.order {
			if !s.matches(m) {
				continue
			}
			st := s.settings
			if topic.settings.RequiresDuplicateDetection {
				st.RequiresDuplicateDetection = true
			}
			if err := put(i, subscriptionTarget(ns.name, topic.name, s.name, st)); err != nil {
				return nil, err
			}
		}
	}
	return seqs, nil
}

// stamp sets enqueue time and expiry from the message's and the entity's
// time to live.
func (h *Handler) stamp(req *request, m *Message, now time.Time) error {
	if err := stamp(req.entitySettings(), m, now); err != nil {
		return fail(http.StatusBadRequest, "The BrokerProperties are invalid: %v.", err)
	}
	if m.Props.ScheduledEnqueueTimeUtc != "" {
		// Scheduled delivery is not supported yet: refuse it rather than
		// deliver early.
		return fail(http.StatusBadRequest, "ScheduledEnqueueTimeUtc is not supported by Outpost yet; send the message when it is due.")
	}
	return nil
}

// stamp sets a message's enqueue time and its expiry, from its own and
// the entity's time to live.
func stamp(s sbresource.Settings, m *Message, now time.Time) error {
	ttl, err := effectiveTTL(m.Props.TimeToLive, s.DefaultTTL)
	if err != nil {
		return err
	}
	m.Enqueued = now
	if exp := now.Add(ttl); exp.After(now) && ttl < 100*365*24*time.Hour {
		m.ExpiresAt = exp
	}
	return nil
}

func parseSingle(r *http.Request, body []byte) (*Message, error) {
	m := &Message{Body: body, User: map[string]string{}}
	if bp := r.Header.Get("BrokerProperties"); bp != "" {
		if err := json.Unmarshal([]byte(bp), &m.Props); err != nil {
			return nil, fail(http.StatusBadRequest, "The BrokerProperties header is not valid JSON: %v. Send e.g. {\"Label\":\"M1\",\"MessageId\":\"1\"}.", err)
		}
	}
	if m.Props.ContentType == "" {
		m.Props.ContentType = r.Header.Get("Content-Type")
	}
	for k, vs := range r.Header {
		if reservedHeaders[k] || strings.HasPrefix(k, "X-Ms-") || strings.HasPrefix(k, "X-Forwarded-") || len(vs) == 0 {
			continue
		}
		m.User[k] = vs[0]
	}
	return m, nil
}

// batchItem is one element of a batch send.
type batchItem struct {
	Body             json.RawMessage  `json:"Body"`
	BrokerProperties BrokerProperties `json:"BrokerProperties"`
	UserProperties   map[string]any   `json:"UserProperties"`
}

func parseBatch(body []byte) ([]*Message, error) {
	var items []batchItem
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fail(http.StatusBadRequest, "The batch is not valid JSON: %v. Send [{\"Body\":\"...\",\"BrokerProperties\":{...},\"UserProperties\":{...}}].", err)
	}
	if len(items) == 0 {
		return nil, fail(http.StatusBadRequest, "The batch is empty; send at least one message.")
	}
	out := make([]*Message, 0, len(items))
	for i, it := range items {
		m := &Message{Props: it.BrokerProperties, User: map[string]string{}}
		var s string
		if err := json.Unmarshal(it.Body, &s); err == nil {
			m.Body = []byte(s)
		} else if len(it.Body) > 0 {
			m.Body = it.Body // a JSON value as the body, kept verbatim
		}
		for k, v := range it.UserProperties {
			switch x := v.(type) {
			case string:
				m.User[k] = strconv.Quote(x)
			case nil:
			default:
				b, _ := json.Marshal(x)
				m.User[k] = string(b)
			}
		}
		if len(m.User) > 64*1024 {
			return nil, fail(http.StatusBadRequest, "Message %d of the batch has too many properties.", i)
		}
		out = append(out, m)
	}
	return out, nil
}

// receive answers DELETE (receive and delete) or POST (peek-lock) on
// .../messages/head, long-polling up to ?timeout= seconds.
func (h *Handler) receive(w http.ResponseWriter, req *request) error {
	status := req.entitySettings().Status
	if !req.dlq && (status == "Disabled" || status == "ReceiveDisabled") {
		return fail(http.StatusForbidden, "MessagingEntityDisabled: The messaging entity '%s' is %s; set its status to Active.", req.entity, status)
	}
	wait := h.cfg.MaxWait
	if t := req.r.URL.Query().Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return fail(http.StatusBadRequest, "The timeout '%s' is invalid: give whole seconds, e.g. ?timeout=60.", t)
		}
		if d := time.Duration(n) * time.Second; d < wait {
			wait = d
		}
	}
	mode := receiveAndDelete
	if req.r.Method == http.MethodPost {
		mode = peekLock
	}
	m, err := h.broker.receive(req.r.Context(), req.target(), mode, wait)
	if err != nil {
		return err
	}
	if m == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	m.writeHeaders(w.Header(), req.dlq)
	code := http.StatusOK
	if mode == peekLock {
		w.Header().Set("Location", "https://"+req.host+"/"+escapePath(req.entity)+"/messages/"+
			strconv.FormatUint(m.SequenceNumber, 10)+"/"+m.LockToken)
		code = http.StatusCreated
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(m.Body)))
	w.WriteHeader(code)
	_, _ = w.Write(m.Body)
	return nil
}

func escapePath(p string) string {
	return strings.ReplaceAll(p, "$", "%24")
}

// settle: DELETE completes, PUT unlocks (abandons), POST renews the lock.
func (h *Handler) settle(w http.ResponseWriter, req *request) error {
	how := settleComplete
	switch req.r.Method {
	case http.MethodPut:
		how = settleAbandon
	case http.MethodPost:
		how = settleRenew
	}
	until, err := h.broker.settle(req.r.Context(), req.target().key(), req.lockToken, how)
	if errors.Is(err, errLockLost) {
		return fail(http.StatusNotFound, "MessageLockLost: The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue (entity '%s', lock token '%s'). Receive the message again.", req.entity, req.lockToken)
	}
	if err != nil {
		return fmt.Errorf("servicebus: settle: %w", err)
	}
	if how == settleRenew {
		w.Header().Set("BrokerProperties", `{"LockedUntilUtc":"`+until.UTC().Format(http.TimeFormat)+`"}`)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
