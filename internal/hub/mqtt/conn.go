package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A connection has one goroutine while it is idle, and up to three while it has work:
//
//	reader (serveLive): reads packets, enforces the topic space, answers PINGREQ/SUBSCRIBE,
//	                 queues PUBLISHes as jobs, tears the connection down at the end
//	worker (work):   while jobs are queued, runs them through the Handler in order and queues
//	                 the PUBACK after each; telemetry already received is started as a batch
//	                 when the Handler is a TelemetryStarter (PUBACKs still in order, each after
//	                 its own store). The first one also calls Connected, before any job
//	writer (write):  while frames are queued, writes them in as few flushes as it can
//
// The worker and the writer return when their queues are empty and are started again by the
// next job or frame; the read buffer is borrowed per packet (connio.go). The TLS handshake and
// CONNECT run on the accepting goroutine, whose stack they grow, and the connection then goes
// on on a fresh one (Serve), so an idle device costs one small stack.
//
// Ending a connection: a read error (EOF, keep-alive timeout, protocol violation, takeover,
// expiry) still lets the worker finish what was received; abort (handler error, write error,
// Close, ctx) cancels the Handler calls and skips what is left.

type job struct {
	kind    publishKind
	qos     byte
	id      uint16
	topic   string
	props   map[string]string
	payload []byte
	rid     string
	status  int
}

type conn struct {
	s      *Server
	nc     net.Conn
	rd     packetReader
	ctx    context.Context // cancelled by abort and at the end of teardown
	cancel context.CancelFunc

	// Set during CONNECT, read-only once the connection is live.
	id        Identity
	clean     bool
	keepAlive time.Duration
	will      *Message
	sess      *session

	// Writing (connio.go), guarded by wmu.
	wmu      sync.Mutex
	outq     [][]byte      // frames for the writer; nil while idle
	writing  bool          // a writer goroutine runs (outq is empty whenever it does not)
	wspace   chan struct{} // closed when the writer takes the queue; made by a waiting sender
	wclosing bool          // flushAndClose was called: close the socket once the queue is written
	wclosed  bool          // the socket is closed for writing; no frame is accepted
	wdone    chan struct{} // closed with wclosed

	pending  atomic.Int64  // jobs queued or running; only decreases once draining is set
	finished chan struct{} // closed after Disconnected: a taking-over connection waits for it
	slots    chan struct{} // in-flight QoS 1 deliveries

	admitted   bool // counted against MaxConnections (guarded by Server.mu)
	takenOver  atomic.Bool
	refused    atomic.Bool // a message was refused: skip the jobs that follow it
	disconnect bool        // a DISCONNECT packet arrived (reader only)

	mu         sync.Mutex
	live       bool
	draining   bool
	jobq       []job         // received PUBLISHes for the worker (connwork.go); nil while idle
	working    bool          // a worker goroutine runs
	jobSpace   chan struct{} // closed when the worker takes a job; made by the waiting reader
	workerIdle chan struct{} // closed when the worker stops; made by teardown
	inflight   map[uint16]func(error)
	ended      bool // teardown took inflight: no more reservations
	nextID     uint16
	reason     error // why the connection ended, first cause wins
}

func newConn(ctx context.Context, s *Server, nc net.Conn) *conn {
	c := &conn{
		s:        s,
		nc:       nc,
		wdone:    make(chan struct{}),
		finished: make(chan struct{}),
		slots:    make(chan struct{}, s.cfg.MaxInflight),
	}
	c.rd.c = c
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

func (c *conn) setReason(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == nil {
		c.reason = err
	}
}

// abort ends the connection now: Handler calls see a cancelled context and queued jobs are
// skipped.
func (c *conn) abort(err error) {
	c.setReason(err)
	c.cancel()
	c.nc.Close()
}

// closeSocket ends the connection the way a network failure would: the reader stops, but what
// was already received is still handled.
func (c *conn) closeSocket(err error) {
	c.setReason(err)
	c.nc.Close()
}

func (c *conn) setLive() {
	c.mu.Lock()
	c.live = true
	c.mu.Unlock()
}

func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// drain asks the connection to finish what it received and close (Shutdown).
func (c *conn) drain() {
	c.mu.Lock()
	live := c.live
	c.draining = true
	c.mu.Unlock()
	if !live {
		c.closeSocket(ErrServerClosed) // still in the handshake or CONNECT: nothing to finish
		return
	}
	c.setReason(ErrServerClosed)
	if c.pending.Load() == 0 {
		c.flushAndClose()
	} // else the worker closes it after the last job
}

// refuse ends the connection after a message was not accepted: the PUBACKs already queued for
// earlier messages still go out, the jobs received after it are skipped, and the device sends the
// unacknowledged messages again when it reconnects.
func (c *conn) refuse(err error) {
	c.setReason(err)
	c.refused.Store(true)
	c.flushAndClose()
}

// serve runs the connection on the calling goroutine.
func (c *conn) serve() {
	if old, ok := c.start(); ok {
		c.serveLive(old)
	}
}

// start runs the TLS handshake and CONNECT; when the connection is accepted the caller goes on
// with serveLive (on another goroutine or not), else the connection is closed.
func (c *conn) start() (old *conn, ok bool) {
	s := c.s
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	c.nc.SetDeadline(deadline)
	connectCtx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(connectCtx, func() {
		if c.ctx.Err() != nil {
			c.nc.Close() // aborted during the handshake
		}
	})
	defer stop()
	if tc, isTLS := c.nc.(*tls.Conn); isTLS {
		if err := tc.HandshakeContext(connectCtx); err != nil {
			s.log.Debug("mqtt: TLS handshake failed", "remote", c.nc.RemoteAddr(), "err", err)
			c.cancel()
			c.nc.Close()
			return nil, false
		}
	}
	old, ok = c.connect(connectCtx)
	if !ok {
		c.rd.drop()
		c.cancel()
		c.nc.Close()
		return nil, false
	}
	c.nc.SetDeadline(time.Time{})
	return old, true
}

// serveLive serves a live connection until it ends.
func (c *conn) serveLive(old *conn) {
	stop := context.AfterFunc(c.ctx, func() { c.nc.Close() })
	defer stop()
	defer c.cancel()
	defer c.nc.Close()
	if !c.id.ExpiresAt.IsZero() {
		t := time.AfterFunc(time.Until(c.id.ExpiresAt), func() {
			c.closeSocket(errors.New("SAS token expired"))
		})
		defer t.Stop()
	}
	if old != nil {
		old.takenOver.Store(true)
		old.closeSocket(errors.New("a new connection for the same device took over"))
	}
	c.mu.Lock()
	c.working = true
	c.mu.Unlock()
	go c.work(&takeover{old: old})

	err := c.readLoop()
	c.teardown(err)
}

// connect reads CONNECT, authenticates, and either refuses with a CONNACK or registers the
// connection (queueing the CONNACK). It returns the connection this one takes over.
func (c *conn) connect(ctx context.Context) (old *conn, ok bool) {
	s := c.s
	refuse := func(code byte, why string, args ...any) (*conn, bool) {
		s.log.Info("mqtt: connection refused", append([]any{"remote", c.nc.RemoteAddr(), "connack", code, "why", why}, args...)...)
		s.metrics.connRefused(code)
		c.nc.Write(encodeConnack(false, code))
		return nil, false
	}

	pk, err := readPacket(&c.rd, s.cfg.MaxPacketSize, 0)
	if errors.Is(err, errBadProtocol) {
		return refuse(connackBadProtocol, "only MQTT 3.1.1 is supported")
	}
	if err != nil {
		s.log.Debug("mqtt: no CONNECT", "remote", c.nc.RemoteAddr(), "err", err)
		return nil, false
	}
	clientID := pk.Connect.ClientIdentifier
	deviceID, moduleID, ok := parseClientID(clientID)
	if !ok {
		return refuse(connackIdentifierRejected, "client id is not {deviceId} or {deviceId}/{moduleId}", "client_id", clientID)
	}
	username := string(pk.Connect.Username)
	host, params, ok := parseUsername(username, clientID)
	if !pk.Connect.UsernameFlag || !ok {
		return refuse(connackBadUsernamePassword, "user name does not name the client id's device", "client_id", clientID, "username", username)
	}
	info := ConnectInfo{
		ClientID:   clientID,
		Username:   username,
		Password:   string(pk.Connect.Password),
		RemoteAddr: c.nc.RemoteAddr(),
		Host:       host,
		DeviceID:   deviceID,
		ModuleID:   moduleID,
		Params:     params,
	}
	if cs, ok := c.nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := cs.ConnectionState()
		info.PeerCertificates, info.ServerName = st.PeerCertificates, st.ServerName
	}

	if !s.admit(c) {
		// Before authenticating: under a flood of CONNECTs that check is
		// the costly part.
		return refuse(connackServerUnavailable, "this node serves its maximum of device connections (--max-device-connections)",
			"client_id", clientID, "max", s.cfg.MaxConnections)
	}
	id, err := s.auth.Authenticate(ctx, info)
	switch {
	case errors.Is(err, ErrBadCredentials):
		return refuse(connackBadUsernamePassword, err.Error(), "client_id", clientID)
	case errors.Is(err, ErrNotAuthorized):
		return refuse(connackNotAuthorized, err.Error(), "client_id", clientID)
	case err != nil:
		return refuse(connackServerUnavailable, err.Error(), "client_id", clientID)
	case id.DeviceID != deviceID || id.ModuleID != moduleID:
		return refuse(connackNotAuthorized, "authenticated identity is not the client id's", "client_id", clientID,
			"device", id.DeviceID, "module", id.ModuleID)
	case !id.ExpiresAt.IsZero() && !time.Now().Before(id.ExpiresAt):
		return refuse(connackBadUsernamePassword, "SAS token expired", "client_id", clientID)
	}
	c.id = id
	c.clean = pk.Connect.Clean
	c.keepAlive = s.cfg.MaxKeepAliveTimeout
	if ka := pk.Connect.Keepalive; ka > 0 {
		c.keepAlive = min(time.Duration(ka)*1500*time.Millisecond, s.cfg.MaxKeepAliveTimeout)
	}
	if pk.Connect.WillFlag {
		// IoT Hub forwards a Will only as telemetry, so it must name the device's events topic.
		p, err := classifyPublish(id, pk.Connect.WillTopic)
		if err != nil || p.kind != pubTelemetry {
			return refuse(connackNotAuthorized, "will topic is not the device's telemetry topic", "topic", pk.Connect.WillTopic)
		}
		p.properties[PropMessageType] = "Will"
		if pk.Connect.WillRetain {
			p.properties[PropRetain] = "true"
		}
		c.will = &Message{Topic: pk.Connect.WillTopic, Properties: p.properties, Payload: pk.Connect.WillPayload, QoS: pk.Connect.WillQos}
	}

	old, ok = s.register(c, c.clean)
	if !ok {
		return refuse(connackServerUnavailable, "server shutting down")
	}
	s.log.Debug("mqtt: connected", "hub", id.Hub, "device", id.DeviceID, "module", id.ModuleID,
		"remote", c.nc.RemoteAddr(), "clean", c.clean, "keepalive", pk.Connect.Keepalive)
	return old, true
}

func (c *conn) readLoop() error {
	s := c.s
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.keepAlive))
		c.rd.release() // waiting for the next packet without a buffer, unless it is buffered
		pk, err := readPacket(&c.rd, s.cfg.MaxPacketSize, protocolLevel311)
		if err != nil {
			return err
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			if err := c.publish(&pk); err != nil {
				return err
			}
		case packets.Puback:
			c.acked(pk.PacketID)
		case packets.Subscribe:
			c.subscribe(&pk)
		case packets.Unsubscribe:
			for _, f := range pk.Filters {
				if sub := allowedSubscription(c.id, f.Filter); sub != subNone {
					c.sess.unsubscribe(sub)
				}
			}
			c.send(c.ctx, encodeUnsuback(pk.PacketID))
		case packets.Pingreq:
			c.send(c.ctx, encodePingresp())
		case packets.Disconnect:
			c.disconnect = true
			return nil
		}
	}
}

func (c *conn) publish(pk *packets.Packet) error {
	m := c.s.metrics
	if pk.FixedHeader.Qos > 1 {
		m.publishRefused("protocol", 1)
		return fmt.Errorf("%w: QoS 2 PUBLISH", errProtocol)
	}
	if len(pk.Payload) > c.s.cfg.MaxMessageSize {
		m.publishRefused("too_large", 1)
		return fmt.Errorf("%w: payload of %d bytes", errPacketTooLarge, len(pk.Payload))
	}
	p, err := classifyPublish(c.id, pk.TopicName)
	if err != nil {
		m.publishRefused("protocol", 1)
		return fmt.Errorf("%w: PUBLISH to %q: %w", errProtocol, pk.TopicName, err)
	}
	m.publishReceived(p.kind)
	if pk.FixedHeader.Retain && p.kind == pubTelemetry {
		p.properties[PropRetain] = "true"
	}
	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		m.publishRefused("draining", 1)
		return nil // not acknowledged: the device sends it again after reconnecting
	}
	c.pending.Add(1)
	c.mu.Unlock()
	j := job{
		kind: p.kind, qos: pk.FixedHeader.Qos, id: pk.PacketID, topic: pk.TopicName,
		props: p.properties, payload: pk.Payload, rid: p.rid, status: p.status,
	}
	if !c.enqueue(j) {
		c.pending.Add(-1)
	}
	return nil
}

func (c *conn) subscribe(pk *packets.Packet) {
	codes := make([]byte, len(pk.Filters))
	for i, f := range pk.Filters {
		sub := allowedSubscription(c.id, f.Filter)
		if sub == subNone {
			c.s.log.Debug("mqtt: subscription refused", "device", c.id.DeviceID, "filter", f.Filter)
			codes[i] = 0x80
			continue
		}
		q := min(f.Qos, 1) // IoT Hub grants at most QoS 1
		c.sess.subscribe(sub, q)
		codes[i] = q
	}
	c.send(c.ctx, encodeSuback(pk.PacketID, codes))
}

// reserve takes an in-flight slot and a packet id for a QoS 1 delivery.
func (c *conn) reserve(ctx context.Context, acked func(error)) (uint16, error) {
	select {
	case c.slots <- struct{}{}:
	case <-c.wdone:
		return 0, ErrConnectionClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if acked == nil {
		acked = func(error) {}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		<-c.slots
		return 0, ErrConnectionClosed
	}
	if c.inflight == nil {
		c.inflight = map[uint16]func(error){}
	}
	for {
		c.nextID++
		if _, used := c.inflight[c.nextID]; c.nextID != 0 && !used {
			break
		}
	}
	c.inflight[c.nextID] = acked
	return c.nextID, nil
}

// release gives back a reservation whose PUBLISH was never queued.
func (c *conn) release(id uint16) {
	c.mu.Lock()
	_, ok := c.inflight[id]
	delete(c.inflight, id)
	c.mu.Unlock()
	if ok {
		<-c.slots
	}
}

// acked handles a PUBACK from the device.
func (c *conn) acked(id uint16) {
	c.mu.Lock()
	cb, ok := c.inflight[id]
	delete(c.inflight, id)
	c.mu.Unlock()
	if ok {
		<-c.slots
		cb(nil)
	}
}

// teardown ends a live connection; see the comment at the top of the file.
func (c *conn) teardown(readErr error) {
	s := c.s
	c.mu.Lock()
	c.draining = true // no more jobs
	c.mu.Unlock()
	c.waitWorkerIdle()
	c.rd.drop()
	s.unregister(c)
	s.metrics.conn(-1)
	c.flushAndClose()
	<-c.wdone
	c.cancel()
	c.nc.Close()

	c.mu.Lock()
	inflight := c.inflight
	c.inflight, c.ended = nil, true
	if c.reason == nil && !c.disconnect {
		c.reason = readErr
	}
	reason := c.reason
	c.mu.Unlock()
	for _, cb := range inflight {
		cb(ErrConnectionClosed)
	}
	if c.clean {
		// A clean session's subscriptions die with it; it was never stored.
		c.sess.mu.Lock()
		clear(c.sess.subs)
		c.sess.mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), s.cfg.ConnectTimeout)
	defer cancel()
	if c.will != nil && !c.disconnect && !c.takenOver.Load() && !errors.Is(reason, ErrServerClosed) {
		if err := s.h.Telemetry(ctx, c.id, *c.will); err != nil {
			s.log.Warn("mqtt: will message not accepted", "device", c.id.DeviceID, "err", err)
		}
	}
	s.h.Disconnected(ctx, c.id)
	close(c.finished)
	s.log.Debug("mqtt: disconnected", "hub", c.id.Hub, "device", c.id.DeviceID, "module", c.id.ModuleID, "reason", reason)
}
