package amqp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Link is what a Handler resolves an attach to: *Inbound, *Outbound or *RPC.
type Link interface{ isLink() }

// Inbound serves a link on which the client sends.
type Inbound struct {
	// Receive is called, on the connection's reader, for every complete
	// message in order. It must not block for long; settle the delivery
	// (from any goroutine) once the message is stored.
	Receive func(d *Delivery)
	// Credit is the link credit kept open (default 1000).
	Credit uint32
	// MaxMessageSize is advertised and enforced (default 1 MiB).
	MaxMessageSize uint64
	// Claim is the audience whose claim authorized the link: when it
	// expires, the link is detached.
	Claim string
	// Closed is called once when the link ends.
	Closed func()
	// Properties go in the attach reply.
	Properties wire.Map
}

// Outbound serves a link on which the client receives.
type Outbound struct {
	// Run sends with s until ctx ends (the link detached) and returns;
	// an error detaches the link with it. Once the Outbound is returned
	// from the handler for a receiving client, Run is always called — after
	// the attach reply is queued — so a handler may register the link before the client learns
	// it is attached, and unregister when Run returns.
	Run func(ctx context.Context, s *Sender) error
	// Source replaces the client's source in the attach reply (to echo a
	// filter as applied); nil echoes the client's.
	Source *wire.Source
	// SndSettleMode answers the client's request when it did not make one.
	SndSettleMode *uint8
	// MaxMessageSize is advertised (default 1 MiB).
	MaxMessageSize uint64
	Claim          string
	Properties     wire.Map
	// OfferedCapabilities go in the attach reply.
	OfferedCapabilities []wire.Symbol
}

// RPC serves a request/response node ($management and the like): the
// client's sender carries requests, and replies go back on a receiver
// link of the same connection.
type RPC struct {
	// Serve answers a request. It runs on its own goroutine.
	Serve func(ctx context.Context, req *wire.Message) *wire.Message
	Claim string
}

func (*Inbound) isLink()  {}
func (*Outbound) isLink() {}
func (*RPC) isLink()      {}

// link is an attached link. Guarded by the connection's mu.
type link struct {
	s            *session
	name         string
	remoteHandle uint32
	handle       uint32
	attach       *wire.Attach
	claim        string

	ctx    context.Context
	cancel context.CancelFunc

	in  *Inbound
	out *Outbound
	rpc *RPC
	// replyTo is set on engine-owned reply links.
	replies chan *wire.Message

	// Inbound state.
	creditWindow  uint32
	maxMsg        uint64
	partial       *Delivery
	unsettledIn   int
	preSettledAll bool

	// Outbound state (and the receiver side's delivery-count inbound).
	deliveryCount uint32
	credit        uint32
	drain         bool
	changed       chan struct{}
	rcvSecond     bool
	sndSettled    bool

	detached  bool // we sent detach or the client did
	ourDetach bool // we sent detach first and await the client's
	closedCB  bool
	counted   bool // in the links gauge
}

// uncountLocked takes an attached link out of the links gauge, once.
// Needs mu.
func (l *link) uncountLocked() {
	if l.counted {
		l.counted = false
		l.s.c.srv.cfg.Metrics.link(l.attach.Role == wire.RoleSender, -1)
	}
}

func (l *link) outbound() bool { return l.out != nil || l.replies != nil }

// signal wakes a sender waiting for credit. Needs mu.
func (l *link) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// flowLocked is a link flow from us. Needs mu.
func (l *link) flowLocked() *wire.Flow {
	f := l.s.flowLocked()
	h, dc, cr := l.handle, l.deliveryCount, l.credit
	f.Handle, f.DeliveryCount, f.LinkCredit = &h, &dc, &cr
	if l.drain {
		f.Drain = true
	}
	return f
}

// terminate ends a link's handler side (connection or session ending).
func (l *link) terminate() {
	c := l.s.c
	c.mu.Lock()
	l.uncountLocked()
	l.detached = true
	l.signal()
	cb := l.takeClosedLocked()
	c.mu.Unlock()
	l.cancel()
	if cb != nil {
		cb()
	}
}

func (l *link) takeClosedLocked() func() {
	if l.closedCB || l.in == nil || l.in.Closed == nil {
		l.closedCB = true
		return nil
	}
	l.closedCB = true
	return l.in.Closed
}

func (c *Conn) onAttach(s *session, a *wire.Attach) error {
	c.mu.Lock()
	if _, used := s.byRemote[a.Handle]; used {
		c.mu.Unlock()
		return wire.Errorf("amqp:session:handle-in-use", "handle %d is already attached", a.Handle)
	}
	if a.Handle > s.handleMax {
		c.mu.Unlock()
		return wire.Errorf("amqp:connection:framing-error", "handle %d is beyond handle-max %d", a.Handle, s.handleMax)
	}
	ours := uint32(0)
	for s.byHandle[ours] != nil {
		ours++
	}
	ctx, cancel := context.WithCancel(c.ctx)
	l := &link{s: s, name: a.Name, remoteHandle: a.Handle, handle: ours, attach: a, ctx: ctx, cancel: cancel, changed: make(chan struct{})}
	s.byRemote[a.Handle] = l
	s.byHandle[ours] = l
	c.mu.Unlock()

	clientSends := a.Role == wire.RoleSender
	var res Link
	var err error
	switch {
	case clientSends && a.Target != nil && isCBS(a.Target.Address):
		res = &RPC{Serve: func(ctx context.Context, req *wire.Message) *wire.Message { return c.serveCBS(ctx, req) }}
	case !clientSends && a.Source != nil && isCBS(a.Source.Address):
		res = replyLink
	default:
		res, err = c.srv.cfg.Handler.Attach(l.ctx, c, a)
	}
	if err == nil && res == nil {
		err = wire.Errorf("amqp:not-found", "nothing is served at this address")
	}
	if err == nil {
		switch res.(type) {
		case *Inbound, *RPC:
			if !clientSends {
				err = wire.Errorf("amqp:not-allowed", "this address only receives: attach a sender")
			}
		case *Outbound, *replyMarker:
			if clientSends {
				err = wire.Errorf("amqp:not-allowed", "this address only sends: attach a receiver")
			}
		}
	}
	if err != nil {
		return c.refuseAttach(l, asAMQPError(err))
	}
	return c.completeAttach(l, res)
}

// refuseAttach answers an attach with a null terminus and a closing
// detach carrying the reason, as the Azure services do.
func (c *Conn) refuseAttach(l *link, e *wire.Error) error {
	a := l.attach
	reply := &wire.Attach{Name: a.Name, Handle: l.handle, Role: !a.Role, SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode}
	if a.Role == wire.RoleSender {
		reply.Source = a.Source
	} else {
		reply.Target = a.Target
		zero := uint32(0)
		reply.InitialDeliveryCount = &zero
	}
	c.mu.Lock()
	l.detached, l.ourDetach = true, true
	c.mu.Unlock()
	l.cancel()
	c.srv.cfg.Metrics.refused(string(e.Condition))
	c.log.Info("amqp: attach refused", "link", a.Name, "address", attachAddress(a), "condition", e.Condition, "description", e.Description)
	if err := c.send(l.s.channel, reply, nil); err != nil {
		return err
	}
	return c.send(l.s.channel, &wire.Detach{Handle: l.handle, Closed: true, Error: e}, nil)
}

func attachAddress(a *wire.Attach) string {
	if a.Role == wire.RoleSender {
		if a.Target != nil {
			return a.Target.Address
		}
		return ""
	}
	if a.Source != nil {
		return a.Source.Address
	}
	return ""
}

func (c *Conn) completeAttach(l *link, res Link) error {
	a := l.attach
	reply := &wire.Attach{Name: a.Name, Handle: l.handle, Role: !a.Role, SndSettleMode: a.SndSettleMode,
		RcvSettleMode: a.RcvSettleMode, Source: a.Source, Target: a.Target}
	var start func()
	var flow *wire.Flow
	c.mu.Lock()
	l.counted = true
	c.srv.cfg.Metrics.link(a.Role == wire.RoleSender, 1)
	switch r := res.(type) {
	case *Inbound:
		l.in = r
		l.claim = r.Claim
		l.creditWindow = r.Credit
		if l.creditWindow == 0 {
			l.creditWindow = 1000
		}
		l.maxMsg = r.MaxMessageSize
		if l.maxMsg == 0 {
			l.maxMsg = 1 << 20
		}
		l.preSettledAll = a.SndSettleMode != nil && *a.SndSettleMode == wire.SenderSettleSettled
		reply.MaxMessageSize = l.maxMsg
		reply.Properties = r.Properties
		l.credit = l.creditWindow
		flow = l.flowLocked()
	case *RPC:
		l.rpc = r
		l.claim = r.Claim
		l.creditWindow, l.maxMsg = 100, 1<<20
		reply.MaxMessageSize = l.maxMsg
		l.credit = l.creditWindow
		flow = l.flowLocked()
	case *Outbound:
		l.out = r
		l.claim = r.Claim
		zero := uint32(0)
		reply.InitialDeliveryCount = &zero
		if r.Source != nil {
			reply.Source = r.Source
		}
		if reply.SndSettleMode == nil && r.SndSettleMode != nil {
			reply.SndSettleMode = r.SndSettleMode
		}
		reply.MaxMessageSize = r.MaxMessageSize
		if reply.MaxMessageSize == 0 {
			reply.MaxMessageSize = 1 << 20
		}
		reply.Properties = r.Properties
		reply.OfferedCapabilities = r.OfferedCapabilities
		l.rcvSecond = a.RcvSettleMode != nil && *a.RcvSettleMode == wire.ReceiverSettleSecond
		l.sndSettled = reply.SndSettleMode != nil && *reply.SndSettleMode == wire.SenderSettleSettled
		snd := &Sender{l: l}
		start = func() {
			err := r.Run(l.ctx, snd)
			if err != nil && l.ctx.Err() == nil {
				l.detachWith(asAMQPError(err))
			}
		}
	case *replyMarker:
		l.replies = make(chan *wire.Message, 64)
		zero := uint32(0)
		reply.InitialDeliveryCount = &zero
		settled := wire.SenderSettleSettled
		reply.SndSettleMode = &settled
		reply.MaxMessageSize = 1 << 20
		l.sndSettled = true
		snd := &Sender{l: l}
		start = func() { runReplies(l.ctx, snd, l.replies) }
	}
	c.mu.Unlock()
	err := c.send(l.s.channel, reply, nil)
	if err == nil && flow != nil {
		err = c.send(l.s.channel, flow, nil)
	}
	// An Outbound's Run starts even when the reply could not be queued (the
	// connection is ending and its teardown ends the link), so that what
	// its handler set up for the link before the reply is always undone by
	// Run's return.
	if start != nil {
		go start()
	}
	return err
}

func (c *Conn) onDetach(s *session, d *wire.Detach) error {
	c.mu.Lock()
	l := s.byRemote[d.Handle]
	if l == nil {
		c.mu.Unlock()
		return wire.Errorf("amqp:session:unattached-handle", "detach of handle %d, which is not attached", d.Handle)
	}
	delete(s.byRemote, d.Handle)
	delete(s.byHandle, l.handle)
	answered := l.ourDetach
	l.uncountLocked()
	l.detached = true
	l.signal()
	cb := l.takeClosedLocked()
	c.mu.Unlock()
	l.cancel()
	if cb != nil {
		cb()
	}
	if answered {
		return nil
	}
	return c.send(s.channel, &wire.Detach{Handle: l.handle, Closed: true}, nil)
}

// detachWith detaches a link from our side with an error.
func (l *link) detachWith(e *wire.Error) {
	c := l.s.c
	c.mu.Lock()
	if l.detached {
		c.mu.Unlock()
		return
	}
	l.detached, l.ourDetach = true, true
	l.uncountLocked()
	l.signal()
	cb := l.takeClosedLocked()
	c.mu.Unlock()
	l.cancel()
	if cb != nil {
		cb()
	}
	if e != nil {
		c.srv.cfg.Metrics.refused(string(e.Condition))
		c.log.Info("amqp: detaching link", "link", l.name, "condition", e.Condition, "description", e.Description)
	}
	c.send(l.s.channel, &wire.Detach{Handle: l.handle, Closed: true, Error: e}, nil) //nolint:errcheck
}

// Delivery is a complete message received on an Inbound (or RPC) link.
type Delivery struct {
	l          *link
	id         uint32
	Tag        []byte
	Format     uint32
	Raw        []byte
	preSettled bool
	settled    bool
	oversize   bool
}

// Message decodes the delivery's message.
func (d *Delivery) Message() (*wire.Message, error) { return wire.ParseMessage(d.Raw) }

// Batch returns the messages of a delivery: the inner messages of an
// Azure batch (message-format 0x80013700), or the message itself.
func (d *Delivery) Batch() ([]*wire.Message, error) {
	m, err := d.Message()
	if err != nil {
		return nil, err
	}
	if d.Format != wire.BatchMessageFormat {
		return []*wire.Message{m}, nil
	}
	out := make([]*wire.Message, 0, len(m.Data))
	for _, raw := range m.Data {
		inner, err := wire.ParseMessage(raw)
		if err != nil {
			return nil, fmt.Errorf("amqp: batch member %d: %w", len(out), err)
		}
		out = append(out, inner)
	}
	return out, nil
}

// Conn is the connection the delivery arrived on.
func (d *Delivery) Conn() *Conn { return d.l.s.c }

// Accept settles the delivery as accepted.
func (d *Delivery) Accept() { d.Settle(&wire.Accepted{}) }

// Reject settles the delivery as rejected with e.
func (d *Delivery) Reject(e *wire.Error) { d.Settle(&wire.Rejected{Error: e}) }

// Settle settles the delivery with a terminal state and frees its credit.
// Settling twice does nothing.
func (d *Delivery) Settle(state any) {
	l := d.l
	c := l.s.c
	c.mu.Lock()
	if d.settled {
		c.mu.Unlock()
		return
	}
	d.settled = true
	l.unsettledIn--
	c.srv.cfg.Metrics.delivered(true, state)
	if l.detached {
		c.mu.Unlock()
		return
	}
	var flow *wire.Flow
	if l.credit < l.creditWindow/2 {
		if room := int(l.creditWindow) - l.unsettledIn; room > int(l.credit) {
			l.credit = uint32(room)
			flow = l.flowLocked()
		}
	}
	ch := l.s.channel
	c.mu.Unlock()
	c.wmu.Lock()
	if !d.preSettled {
		c.sendLocked(ch, &wire.Disposition{Role: wire.RoleReceiver, First: d.id, Settled: true, State: state}, nil) //nolint:errcheck
	}
	if flow != nil {
		c.sendLocked(ch, flow, nil) //nolint:errcheck
	}
	c.wmu.Unlock()
}

func (c *Conn) onTransfer(s *session, t *wire.Transfer) error {
	c.mu.Lock()
	sflow, err := s.gotTransferFrameLocked()
	if err != nil {
		c.mu.Unlock()
		return err
	}
	l := s.byRemote[t.Handle]
	if l == nil {
		c.mu.Unlock()
		return wire.Errorf("amqp:session:unattached-handle", "transfer on handle %d, which is not attached", t.Handle)
	}
	if l.in == nil && l.rpc == nil {
		c.mu.Unlock()
		if l.detached {
			return nil
		}
		return wire.Errorf("amqp:not-allowed", "transfer on a link where the client receives")
	}
	if l.detached {
		c.mu.Unlock()
		return c.sendFlow(s, sflow)
	}
	d := l.partial
	if d == nil {
		if t.DeliveryID == nil {
			c.mu.Unlock()
			return wire.Errorf("amqp:not-allowed", "the first transfer of a delivery has no delivery-id")
		}
		if l.credit == 0 {
			c.mu.Unlock()
			l.detachWith(wire.Errorf("amqp:link:transfer-limit-exceeded", "a transfer without link credit"))
			return c.sendFlow(s, sflow)
		}
		l.credit--
		l.deliveryCount++
		l.unsettledIn++
		d = &Delivery{l: l, id: *t.DeliveryID, Tag: t.DeliveryTag, preSettled: t.Settled || l.preSettledAll}
		if t.MessageFormat != nil {
			d.Format = *t.MessageFormat
		}
	}
	if t.Aborted {
		l.partial = nil
		l.unsettledIn--
		c.mu.Unlock()
		return c.sendFlow(s, sflow)
	}
	if t.Settled {
		d.preSettled = true
	}
	if !d.oversize && uint64(len(d.Raw)+len(t.Payload)) > l.maxMsg {
		// Refuse this delivery, not the link: the rest of its frames
		// are read and dropped, then it is rejected.
		d.oversize, d.Raw = true, nil
	}
	if d.oversize {
		if t.More {
			l.partial = d
			c.mu.Unlock()
			return c.sendFlow(s, sflow)
		}
		l.partial = nil
		max := l.maxMsg
		c.mu.Unlock()
		if err := c.sendFlow(s, sflow); err != nil {
			return err
		}
		d.Reject(wire.Errorf("amqp:link:message-size-exceeded", "The message is larger than the link's max-message-size of %d bytes.", max))
		return nil
	}
	if t.More {
		d.Raw = append(d.Raw, t.Payload...)
		l.partial = d
		c.mu.Unlock()
		return c.sendFlow(s, sflow)
	}
	l.partial = nil
	if d.Raw == nil {
		d.Raw = t.Payload // the frame buffer is ours: no copy needed
	} else {
		d.Raw = append(d.Raw, t.Payload...)
	}
	in, rpc := l.in, l.rpc
	c.mu.Unlock()
	if err := c.sendFlow(s, sflow); err != nil {
		return err
	}
	if in != nil {
		in.Receive(d)
		return nil
	}
	go c.serveRequest(l, rpc, d)
	return nil
}

func (c *Conn) sendFlow(s *session, f *wire.Flow) error {
	if f == nil {
		return nil
	}
	return c.send(s.channel, f, nil)
}

// outDelivery is an unsettled delivery we sent.
type outDelivery struct {
	l         *link
	onOutcome func(state any) any
}

func (c *Conn) onDisposition(s *session, d *wire.Disposition) error {
	if d.Role != wire.RoleReceiver {
		// Dispositions for what the client sent us, from the client as
		// sender: only settlement of deliveries we already settled.
		return nil
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	if last-d.First > 1<<20 {
		return wire.Errorf("amqp:invalid-field", "disposition range %d..%d is too large", d.First, last)
	}
	type outcome struct {
		id uint32
		od *outDelivery
	}
	var todo []outcome
	c.mu.Lock()
	for id := d.First; ; id++ {
		if od, ok := s.unsettled[id]; ok {
			todo = append(todo, outcome{id, od})
			delete(s.unsettled, id)
		}
		if id == last {
			break
		}
	}
	ch := s.channel
	c.mu.Unlock()
	for _, o := range todo {
		final := d.State
		if o.od.onOutcome != nil {
			if f := o.od.onOutcome(d.State); f != nil {
				final = f
			}
		}
		if !d.Settled {
			// Receiver settle mode second: the client waits for our
			// settled disposition with the final state.
			if err := c.send(ch, &wire.Disposition{Role: wire.RoleSender, First: o.id, Settled: true, State: final}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Sender sends on an Outbound link.
type Sender struct {
	l *link
}

// Attach is the client's attach.
func (s *Sender) Attach() *wire.Attach { return s.l.attach }

// Conn is the link's connection.
func (s *Sender) Conn() *Conn { return s.l.s.c }

// Name is the link name.
func (s *Sender) Name() string { return s.l.name }

// ReceiverSettlesSecond reports rcv-settle-mode second (the client waits
// for our settled disposition after its own).
func (s *Sender) ReceiverSettlesSecond() bool { return s.l.rcvSecond }

// PreSettled reports whether deliveries go settled (snd-settle-mode
// settled was agreed).
func (s *Sender) PreSettled() bool { return s.l.sndSettled }

// ErrDetached is returned once the link ended.
var ErrDetached = errors.New("amqp: link detached")

// Wait blocks until the client grants credit or asks to drain, and
// returns the credit and the drain flag.
func (s *Sender) Wait(ctx context.Context) (uint32, bool, error) {
	l := s.l
	c := l.s.c
	for {
		c.mu.Lock()
		credit, drain, detached, ch := l.credit, l.drain, l.detached, l.changed
		c.mu.Unlock()
		if detached {
			return 0, false, ErrDetached
		}
		if credit > 0 || drain {
			return credit, drain, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, false, context.Cause(ctx)
		}
	}
}

// Changed returns a channel closed at the next change of the link's
// credit, drain flag or state: a sender waiting for its own data selects
// on it to notice a drain request.
func (s *Sender) Changed() <-chan struct{} {
	c := s.l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.l.changed
}

// Drained completes a drain: the unused credit is spent and the client is
// told (a flow with drain set and no credit).
func (s *Sender) Drained() {
	l := s.l
	c := l.s.c
	c.mu.Lock()
	if !l.drain || l.detached {
		c.mu.Unlock()
		return
	}
	l.deliveryCount += l.credit
	l.credit = 0
	f := l.flowLocked()
	l.drain = false
	c.mu.Unlock()
	c.send(l.s.channel, f, nil) //nolint:errcheck
}

// SendOptions are per-delivery choices.
type SendOptions struct {
	// Settled sends the delivery pre-settled.
	Settled bool
	// Tag is the delivery tag (default: an 8-byte counter).
	Tag []byte
	// Format is the message-format (0 for a plain message).
	Format uint32
	// OnOutcome is called with the client's outcome of an unsettled
	// delivery; a non-nil return replaces the state echoed back in
	// receiver settle mode second.
	OnOutcome func(state any) any
}

// Send sends an encoded message once credit and the session window allow.
func (s *Sender) Send(ctx context.Context, payload []byte, o SendOptions) error {
	l := s.l
	c := l.s.c
	if err := c.waitSpace(ctx); err != nil {
		return err
	}
	maxPayload := int(c.peerMaxFrame) - 64 - len(o.Tag)
	frames := max(1, (len(payload)+maxPayload-1)/maxPayload)
	for {
		c.mu.Lock()
		if l.detached || l.s.ended {
			c.mu.Unlock()
			return ErrDetached
		}
		if l.credit > 0 && l.s.remoteIncomingWindow >= uint32(frames) {
			break
		}
		lch, sch := l.changed, l.s.windowOpen
		c.mu.Unlock()
		select {
		case <-lch:
		case <-sch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	// Holding mu, then wmu: delivery ids reach the wire in the order they
	// were assigned.
	sess := l.s
	id := sess.nextDeliveryID
	sess.nextDeliveryID++
	sess.nextOutgoingID += uint32(frames)
	sess.remoteIncomingWindow -= uint32(frames)
	l.credit--
	l.deliveryCount++
	tag := o.Tag
	if tag == nil {
		tag = binary.BigEndian.AppendUint64(nil, uint64(l.deliveryCount))
	}
	settled := o.Settled || l.sndSettled
	if !settled {
		sess.unsettled[id] = &outDelivery{l: l, onOutcome: o.OnOutcome}
	}
	c.wmu.Lock()
	c.mu.Unlock()
	defer c.wmu.Unlock()
	c.srv.cfg.Metrics.delivered(false, nil)
	format := o.Format
	for i := 0; i < frames; i++ {
		chunk := payload
		if len(chunk) > maxPayload {
			chunk = chunk[:maxPayload]
		}
		payload = payload[len(chunk):]
		t := &wire.Transfer{Handle: l.handle, More: len(payload) > 0}
		if i == 0 {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat, t.Settled = &id, tag, &format, settled
		}
		if err := c.sendLocked(sess.channel, t, chunk); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return ErrDetached
			}
			return err
		}
	}
	return nil
}

// Detach ends the link from our side with an error (nil: a plain close).
func (s *Sender) Detach(e *wire.Error) { s.l.detachWith(e) }
