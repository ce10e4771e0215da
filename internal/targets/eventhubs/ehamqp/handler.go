package ehamqp

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Link properties and filter keys the SDKs send.
const (
	propEpoch        = "com.microsoft:epoch"
	propReceiverName = "com.microsoft:receiver-name"
	selectorFilter   = "apache.org:selector-filter:string"
	// selectorDescriptor is 0x0000468C:0x00000004.
	selectorDescriptor uint64 = 0x0000468C00000004
	// maxReaders is Event Hubs' limit of concurrent non-epoch receivers
	// per partition and consumer group.
	maxReaders = 5
)

// Handler serves the Event Hubs AMQP protocol over a Backend.
type Handler struct {
	b   Backend
	log *slog.Logger

	mu        sync.Mutex
	receivers map[string][]*receiver // by host/eventhub/consumergroup/partition
}

// New builds a handler.
func New(b Backend, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{b: b, log: log, receivers: map[string][]*receiver{}}
}

var _ amqp.Handler = (*Handler)(nil)

// Open implements amqp.Handler.
func (h *Handler) Open(ctx context.Context, c *amqp.Conn) error { return h.b.Open(ctx, c) }

// PlainBackend is implemented by backends that accept SASL PLAIN.
type PlainBackend interface {
	AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error)
}

// AuthenticatePlain implements amqp.PlainAuthenticator when the backend
// takes SASL PLAIN.
func (h *Handler) AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error) {
	pb, ok := h.b.(PlainBackend)
	if !ok {
		return nil, errors.New("ehamqp: SASL PLAIN is not accepted here; use ANONYMOUS and put a token on $cbs")
	}
	return pb.AuthenticatePlain(ctx, c, user, password)
}

// PutToken implements amqp.Handler.
func (h *Handler) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	return h.b.PutToken(ctx, c, t)
}

// address is a parsed link address.
type address struct {
	eventHub      string
	consumerGroup string
	partition     int // -1: any
	management    bool
	path          string // the entity path, for claims
}

// parseAddress accepts the addresses the SDKs use, optionally as a URL.
func parseAddress(raw string) (address, error) {
	a := address{partition: -1}
	s := raw
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
		s = u.Path
	}
	s = strings.Trim(s, "/")
	parts := strings.Split(s, "/")
	if len(parts) == 1 && strings.EqualFold(parts[0], "$management") {
		a.management, a.path = true, "$management"
		return a, nil
	}
	if parts[0] == "" {
		return a, wire.Errorf("amqp:not-found", "The link has no address; use '{eventhub}', '{eventhub}/Partitions/{id}' or '{eventhub}/ConsumerGroups/{group}/Partitions/{id}'.")
	}
	a.eventHub, a.path = parts[0], s
	bad := wire.Errorf("amqp:not-found", "The address '%s' is not an Event Hubs entity path: use '{eventhub}', '{eventhub}/Partitions/{id}' or '{eventhub}/ConsumerGroups/{group}/Partitions/{id}'.", raw)
	switch {
	case len(parts) == 1:
	case len(parts) == 2 && strings.EqualFold(parts[1], "$management"):
		a.management = true
	case len(parts) == 3 && strings.EqualFold(parts[1], "Partitions"):
		p, err := strconv.Atoi(parts[2])
		if err != nil || p < 0 {
			return a, bad // -1 means any partition to the sender; "Partitions/-1" must not
		}
		a.partition = p
	case len(parts) == 5 && strings.EqualFold(parts[1], "ConsumerGroups") && strings.EqualFold(parts[3], "Partitions"):
		p, err := strconv.Atoi(parts[4])
		if err != nil || p < 0 {
			return a, bad
		}
		a.consumerGroup, a.partition = parts[2], p
	default:
		return a, bad
	}
	return a, nil
}

// Attach implements amqp.Handler.
func (h *Handler) Attach(ctx context.Context, c *amqp.Conn, at *wire.Attach) (amqp.Link, error) {
	clientSends := at.Role == wire.RoleSender
	raw := ""
	if clientSends && at.Target != nil {
		raw = at.Target.Address
	} else if !clientSends && at.Source != nil {
		raw = at.Source.Address
	}
	addr, err := parseAddress(raw)
	if err != nil {
		return nil, err
	}
	if addr.management {
		if !clientSends {
			return amqp.ReplyLink(), nil
		}
		return &amqp.RPC{Serve: func(ctx context.Context, req *wire.Message) *wire.Message { return h.serveManagement(ctx, c, req) }}, nil
	}
	eh, err := h.b.EventHub(ctx, c, addr.eventHub)
	if err != nil {
		return nil, err
	}
	if addr.partition >= eh.Partitions() || (addr.partition < 0 && addr.consumerGroup != "") {
		return nil, wire.Errorf("com.microsoft:argument-out-of-range",
			"The specified partition '%d' is invalid for an EventHub partition sender or receiver. It should be between 0 and %d.", addr.partition, eh.Partitions()-1)
	}
	right := RightSend
	if !clientSends {
		right = RightListen
	}
	claim, err := h.authorize(ctx, c, eh.Name(), addr.path, right)
	if err != nil {
		return nil, err
	}
	if clientSends {
		if addr.consumerGroup != "" {
			return nil, wire.Errorf("amqp:not-allowed", "'%s' is a receive address; send to '%s' or '%s/Partitions/{id}'.", raw, eh.Name(), eh.Name())
		}
		return h.sender(eh, addr, claim), nil
	}
	if addr.consumerGroup == "" {
		return nil, wire.Errorf("amqp:not-allowed", "Receive from '%s/ConsumerGroups/{group}/Partitions/{id}'.", eh.Name())
	}
	if !eh.HasConsumerGroup(addr.consumerGroup) {
		return nil, wire.Errorf("amqp:not-found", "The consumer group '%s' does not exist in event hub '%s'. Create it first.", addr.consumerGroup, eh.Name())
	}
	pos, err := parseFilter(at.Source)
	if err != nil {
		return nil, err
	}
	return h.receiverLink(c, at, eh, addr, pos, claim)
}

// authorize finds the claim covering the entity and checks its right.
func (h *Handler) authorize(ctx context.Context, c *amqp.Conn, eventHub, path, right string) (string, error) {
	aud := c.Host() + "/" + path
	cl, ok := c.ClaimFor(aud)
	if !ok {
		return "", wire.Errorf("amqp:unauthorized-access",
			"Unauthorized access: no token covers '%s'. Put a token for the namespace or the event hub on $cbs before attaching.", aud)
	}
	g, ok := cl.Principal.(Grant)
	if !ok {
		return "", wire.Errorf("amqp:unauthorized-access", "Unauthorized access: the claim for '%s' grants nothing.", cl.Audience)
	}
	if err := g.Allow(ctx, c, eventHub, right); err != nil {
		return "", err
	}
	return cl.Audience, nil
}

var filterPattern = regexp.MustCompile(`(?i)^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>|=)\s*'([^']*)'\s*$`)

// parseFilter reads the selector filter (no filter: only new events, the
// SDKs' default).
func parseFilter(src *wire.Source) (Position, error) {
	pos := Position{Kind: FromLatest}
	if src == nil {
		return pos, nil
	}
	v, ok := src.Filter.Get(selectorFilter)
	if !ok {
		for _, kv := range src.Filter {
			if d, isD := kv.Value.(wire.Described); isD {
				if n, isN := d.Descriptor.(uint64); isN && n == selectorDescriptor {
					v, ok = d, true
				}
			}
		}
	}
	if !ok {
		return pos, nil
	}
	if d, isD := v.(wire.Described); isD {
		v = d.Value
	}
	expr, _ := v.(string)
	m := filterPattern.FindStringSubmatch(expr)
	if m == nil {
		return pos, wire.Errorf("com.microsoft:argument-error",
			"The selector filter '%s' is not understood: use amqp.annotation.x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time > or >= '<value>'.", expr)
	}
	name, op, lit := strings.ToLower(m[1]), m[2], m[3]
	inclusive := op != ">"
	switch {
	case name == "x-opt-offset" && lit == "-1":
		return Position{Kind: FromEarliest}, nil
	case name == "x-opt-offset" && lit == "@latest":
		return Position{Kind: FromLatest}, nil
	case name == "x-opt-offset" || name == "x-opt-sequence-number":
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return pos, wire.Errorf("com.microsoft:argument-error", "The %s '%s' in the selector filter is not a number.", name, lit)
		}
		if n < 0 {
			return Position{Kind: FromEarliest}, nil
		}
		return Position{Kind: FromSequence, Sequence: n, Inclusive: inclusive}, nil
	default:
		ms, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return pos, wire.Errorf("com.microsoft:argument-error", "The enqueued time '%s' in the selector filter is not milliseconds since the epoch.", lit)
		}
		t := time.UnixMilli(ms)
		if !inclusive {
			t = t.Add(time.Millisecond)
		}
		return Position{Kind: FromTime, Time: t}, nil
	}
}

// sender serves a link on which the client sends: each delivery (an event
// or a batch) is stored in order, then accepted.
func (h *Handler) sender(eh EventHub, addr address, claim string) amqp.Link {
	type job struct{ d *amqp.Delivery }
	var (
		once  sync.Once
		queue chan job
		done  = make(chan struct{})
	)
	start := func() {
		queue = make(chan job, 1024)
		go func() {
			for {
				select {
				case j := <-queue:
					h.publish(eh, addr.partition, j.d)
				case <-done:
					return
				}
			}
		}()
	}
	return &amqp.Inbound{
		Claim:          claim,
		MaxMessageSize: eh.MaxMessageSize(),
		Credit:         1000,
		Receive: func(d *amqp.Delivery) {
			once.Do(start)
			queue <- job{d}
		},
		Closed: func() { close(done) },
	}
}

func (h *Handler) publish(eh EventHub, partition int, d *amqp.Delivery) {
	msgs, err := d.Batch()
	if err != nil {
		d.Reject(wire.Errorf("amqp:decode-error", "The message could not be decoded: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eh.Publish(ctx, partition, msgs); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			h.log.Warn("eventhubs: storing events failed", "eventhub", eh.Name(), "err", err)
			we = wire.Errorf("com.microsoft:server-busy", "The events could not be stored (%v); retry.", err)
		}
		d.Reject(we)
		return
	}
	d.Accept()
}
