package amqp

import (
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// incomingWindow is the session window granted to clients (transfer
// frames they may send before a flow from us); it is topped up when half
// is used.
const incomingWindow = 5000

// session is one begun session. Guarded by the connection's mu.
type session struct {
	c             *Conn
	remoteChannel uint16
	channel       uint16

	// Incoming transfers.
	nextIncomingID uint32
	incomingLeft   uint32

	// Outgoing transfers.
	nextOutgoingID       uint32
	nextDeliveryID       uint32
	remoteIncomingWindow uint32
	windowOpen           chan struct{} // closed and replaced when the window grows

	handleMax   uint32
	byRemote    map[uint32]*link // by the client's handle
	byHandle    map[uint32]*link // by ours
	unsettled   map[uint32]*outDelivery
	ended       bool
	linkCounter uint32
}

func (c *Conn) onBegin(channel uint16, b *wire.Begin) error {
	if b.RemoteChannel != nil {
		return wire.Errorf("amqp:not-implemented", "sessions begun by the server are not answered")
	}
	c.mu.Lock()
	if _, dup := c.sessions[channel]; dup {
		c.mu.Unlock()
		return wire.Errorf("amqp:connection:framing-error", "channel %d already has a session", channel)
	}
	if len(c.sessions) >= c.srv.cfg.MaxSessions {
		c.mu.Unlock()
		return wire.Errorf("amqp:resource-limit-exceeded", "at most %d sessions per connection", c.srv.cfg.MaxSessions)
	}
	ours := uint16(0)
	for c.ourChans[ours] {
		ours++
	}
	c.ourChans[ours] = true
	hm := uint32(c.srv.cfg.MaxLinks - 1)
	s := &session{
		c: c, remoteChannel: channel, channel: ours,
		nextIncomingID: b.NextOutgoingID, incomingLeft: incomingWindow,
		remoteIncomingWindow: b.IncomingWindow, windowOpen: make(chan struct{}),
		handleMax: hm, byRemote: map[uint32]*link{}, byHandle: map[uint32]*link{}, unsettled: map[uint32]*outDelivery{},
	}
	c.sessions[channel] = s
	c.mu.Unlock()
	rc := channel
	return c.send(ours, &wire.Begin{RemoteChannel: &rc, NextOutgoingID: 0, IncomingWindow: incomingWindow,
		OutgoingWindow: 0xffffffff, HandleMax: &hm}, nil)
}

func (c *Conn) onEnd(s *session, e *wire.End) error {
	c.mu.Lock()
	links := make([]*link, 0, len(s.byRemote))
	for _, l := range s.byRemote {
		links = append(links, l)
	}
	s.ended = true
	delete(c.sessions, s.remoteChannel)
	delete(c.ourChans, s.channel)
	s.signalWindow()
	c.mu.Unlock()
	for _, l := range links {
		l.terminate()
	}
	return c.send(s.channel, &wire.End{}, nil)
}

// signalWindow wakes senders waiting for the session window. Needs mu.
func (s *session) signalWindow() {
	close(s.windowOpen)
	s.windowOpen = make(chan struct{})
}

// flowLocked is the session part of a flow from us. Needs mu.
func (s *session) flowLocked() *wire.Flow {
	nid := s.nextIncomingID
	return &wire.Flow{NextIncomingID: &nid, IncomingWindow: s.incomingLeft, NextOutgoingID: s.nextOutgoingID, OutgoingWindow: 0xffffffff}
}

func (c *Conn) onFlow(s *session, f *wire.Flow) error {
	c.mu.Lock()
	// The client's view of our outgoing transfers gives the window left.
	nid := uint32(0)
	if f.NextIncomingID != nil {
		nid = *f.NextIncomingID
	}
	s.remoteIncomingWindow = nid + f.IncomingWindow - s.nextOutgoingID
	s.signalWindow()
	var l *link
	if f.Handle != nil {
		l = s.byRemote[*f.Handle]
		if l == nil {
			c.mu.Unlock()
			return wire.Errorf("amqp:session:unattached-handle", "flow for handle %d, which is not attached", *f.Handle)
		}
	}
	var reply *wire.Flow
	if l != nil && l.outbound() {
		// credit = the client's delivery-count + link-credit − ours.
		dc := l.deliveryCount
		if f.DeliveryCount != nil {
			dc = *f.DeliveryCount
		}
		credit := uint32(0)
		if f.LinkCredit != nil {
			credit = *f.LinkCredit
		}
		l.credit = dc + credit - l.deliveryCount
		if int32(l.credit) < 0 {
			l.credit = 0
		}
		l.drain = f.Drain
		l.signal()
		if f.Echo {
			reply = l.flowLocked()
		}
	} else if l != nil {
		if f.Echo {
			reply = l.flowLocked()
		}
	} else if f.Echo {
		reply = s.flowLocked()
	}
	c.mu.Unlock()
	if reply != nil {
		return c.send(s.channel, reply, nil)
	}
	return nil
}

// gotTransferFrameLocked counts an incoming transfer frame against the
// session window and returns a flow to send when it must be reopened.
func (s *session) gotTransferFrameLocked() (*wire.Flow, error) {
	if s.incomingLeft == 0 {
		return nil, wire.Errorf("amqp:session:window-violation", "a transfer beyond the session's incoming window")
	}
	s.nextIncomingID++
	s.incomingLeft--
	if s.incomingLeft < incomingWindow/2 {
		s.incomingLeft = incomingWindow
		return s.flowLocked(), nil
	}
	return nil, nil
}
