package ehamqp

import (
	"context"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Event Hubs message annotations.
const (
	annSequenceNumber = "x-opt-sequence-number"
	annOffset         = "x-opt-offset"
	annEnqueuedTime   = "x-opt-enqueued-time"
	annPartitionKey   = "x-opt-partition-key"
)

// receiver is an attached receiver, for owner-level (epoch) rules.
type receiver struct {
	name   string
	epoch  *int64
	sender *amqp.Sender
	stolen chan string // closed-over reason when displaced
}

func (h *Handler) receiverLink(c *amqp.Conn, at *wire.Attach, eh EventHub, addr address, pos Position, claim string) (amqp.Link, error) {
	r := &receiver{name: at.Properties.String(propReceiverName), stolen: make(chan string, 1)}
	if r.name == "" {
		r.name = at.Name
	}
	if v, ok := at.Properties.Get(propEpoch); ok {
		n, isInt := wire.AsInt64(v)
		if !isInt {
			return nil, wire.Errorf("com.microsoft:argument-error", "The %s property must be a long, not %T.", propEpoch, v)
		}
		r.epoch = &n
	}
	key := strings.ToLower(c.Host() + "/" + eh.Name() + "/" + addr.consumerGroup + "/" + strconv.Itoa(addr.partition))
	settled := wire.SenderSettleSettled
	return &amqp.Outbound{
		Claim:          claim,
		SndSettleMode:  &settled,
		MaxMessageSize: eh.MaxMessageSize(),
		Run: func(ctx context.Context, s *amqp.Sender) error {
			r.sender = s
			if err := h.register(key, r); err != nil {
				return err
			}
			defer h.unregister(key, r)
			return h.runReceiver(ctx, s, r, eh, addr.partition, pos)
		},
	}, nil
}

// register applies the owner-level rules: a higher epoch displaces lower
// and non-epoch receivers (amqp:link:stolen); a lower one, or a non-epoch
// receiver while an epoch receiver holds the partition, is refused; at
// most five non-epoch receivers read a partition of a consumer group.
func (h *Handler) register(key string, r *receiver) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.receivers[key]
	var displaced []*receiver
	keep := cur[:0:0]
	plain := 0
	for _, o := range cur {
		switch {
		case r.epoch != nil && (o.epoch == nil || *o.epoch < *r.epoch):
			displaced = append(displaced, o)
			continue
		case r.epoch != nil && *o.epoch > *r.epoch:
			return wire.Errorf("amqp:link:stolen", "Receiver '%s' with a higher epoch of '%d' already exists; receiver '%s' with epoch '%d' cannot be created. If you are recreating the receiver, make sure a higher epoch is used.",
				o.name, *o.epoch, r.name, *r.epoch)
		case r.epoch == nil && o.epoch != nil:
			return wire.Errorf("amqp:link:stolen", "Receiver '%s' with epoch '%d' already exists; a receiver without an epoch cannot be created.", o.name, *o.epoch)
		}
		if o.epoch == nil {
			plain++
		}
		keep = append(keep, o)
	}
	if r.epoch == nil && plain >= maxReaders {
		return wire.Errorf("amqp:resource-limit-exceeded", "Exceeded the maximum number of allowed receivers per partition in a consumer group which is %d.", maxReaders)
	}
	h.receivers[key] = append(keep, r)
	for _, o := range displaced {
		oe := "none"
		if o.epoch != nil {
			oe = strconv.FormatInt(*o.epoch, 10)
		}
		o.sender.Detach(wire.Errorf("amqp:link:stolen",
			"New receiver '%s' with higher epoch of '%d' is created hence current receiver '%s' with epoch '%s' is getting disconnected. If you are recreating the receiver, make sure a higher epoch is used.",
			r.name, *r.epoch, o.name, oe))
	}
	return nil
}

func (h *Handler) unregister(key string, r *receiver) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.receivers[key]
	for i, o := range cur {
		if o == r {
			cur = append(cur[:i:i], cur[i+1:]...)
			break
		}
	}
	if len(cur) == 0 {
		delete(h.receivers, key)
	} else {
		h.receivers[key] = cur
	}
}

// runReceiver sends the partition's events, pre-settled as Event Hubs
// does, as the client's credit allows; a drain with nothing at hand is
// answered at once.
func (h *Handler) runReceiver(ctx context.Context, s *amqp.Sender, r *receiver, eh EventHub, partition int, pos Position) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan Event, 512)
	readErr := make(chan error, 1)
	go func() {
		readErr <- eh.Read(rctx, partition, pos, func(ev Event) error {
			select {
			case events <- ev:
				return nil
			case <-rctx.Done():
				return rctx.Err()
			}
		})
	}()
	var buf []byte
	send := func(ev Event) error {
		var err error
		buf, err = appendEvent(buf[:0], ev)
		if err != nil {
			return err
		}
		// Send copies nothing: the frame is encoded before it returns.
		return s.Send(ctx, buf, amqp.SendOptions{Settled: true})
	}
	for {
		_, drain, err := s.Wait(ctx)
		if err != nil {
			return nil
		}
		select {
		case ev := <-events:
			if err := send(ev); err != nil {
				return nil
			}
			continue
		default:
		}
		if drain {
			s.Drained()
			continue
		}
		select {
		case ev := <-events:
			if err := send(ev); err != nil {
				return nil
			}
		case err := <-readErr:
			if ctx.Err() != nil || err == nil {
				return nil
			}
			h.log.Warn("eventhubs: reading a partition failed", "eventhub", eh.Name(), "partition", partition, "err", err)
			return wire.Errorf("amqp:internal-error", "Reading partition %d failed: %v", partition, err)
		case <-s.Changed():
		case <-ctx.Done():
			return nil
		}
	}
}

// appendEvent encodes an event as a receiver gets it.
func appendEvent(b []byte, ev Event) ([]byte, error) {
	ann := make(wire.Map, 0, 4+len(ev.Annotations))
	ann = append(ann,
		wire.KV{Key: wire.Symbol(annSequenceNumber), Value: ev.SequenceNumber},
		wire.KV{Key: wire.Symbol(annOffset), Value: strconv.FormatInt(ev.SequenceNumber, 10)},
		wire.KV{Key: wire.Symbol(annEnqueuedTime), Value: ev.EnqueuedTime},
	)
	if ev.PartitionKey != "" {
		ann = append(ann, wire.KV{Key: wire.Symbol(annPartitionKey), Value: ev.PartitionKey})
	}
	ann = append(ann, ev.Annotations...)
	m := wire.Message{Annotations: ann, Properties: ev.Properties, ApplicationProperties: ev.ApplicationProperties, Data: [][]byte{ev.Body}}
	if ev.Body == nil {
		m.Data = [][]byte{{}}
	}
	return m.AppendAMQP(b)
}
