package mqtt

import (
	"bufio"
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

// A connection runs three goroutines, all ended before serve returns:
//
//	reader (serve):  reads packets, enforces the topic space, answers PINGREQ/SUBSCRIBE,
//	                 queues PUBLISHes as jobs, tears the connection down at the end
//	worker (work):   runs jobs through the Handler in order and queues the PUBACK after each;
//	                 telemetry already received is started as a batch when the Handler is a
//	                 TelemetryStarter (PUBACKs still in order, each after its own store); also
//	                 calls Connected first
//	writer (write):  writes queued frames, batching them into as few flushes as it can
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
	br     *bufio.Reader
	ctx    context.Context // cancelled by abort and at the end of teardown
	cancel context.CancelFunc

	// Set during CONNECT, read-only once the connection is live.
	id        Identity
	clean     bool
	keepAlive time.Duration
	will      *Message
	sess      *session

	out        chan []byte   // frames for the writer
	writerDone chan struct{} // closed when the writer has returned
	flushClose chan struct{} // closed to make the writer flush what is queued and close the socket
	flushOnce  sync.Once
	jobs       chan job      // closed by the reader only
	workerDone chan struct{} // closed when the worker has returned
	drainCh    chan struct{} // closed by drain
	drainOnce  sync.Once
	pending    atomic.Int64  // jobs queued or running; only decreases once draining is set
	finished   chan struct{} // closed after Disconnected: a taking-over connection waits for it
	slots      chan struct{} // in-flight QoS 1 deliveries

	admitted   bool // counted against MaxConnections (guarded by Server.mu)
	takenOver  atomic.Bool
	refused    atomic.Bool // a message was refused: skip the jobs that follow it
	disconnect bool        // a DISCONNECT packet arrived (reader only)

	mu       sync.Mutex
	live     bool
	draining bool
	inflight map[uint16]func(error) // nil once the connection has ended
	nextID   uint16
	reason   error // why the connection ended, first cause wins
}

func newConn(ctx context.Context, s *Server, nc net.Conn) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		out:        make(chan []byte, s.cfg.WriteQueue),
		writerDone: make(chan struct{}),
		flushClose: make(chan struct{}),
		jobs:       make(chan job, s.cfg.ReadAhead),
		workerDone: make(chan struct{}),
		drainCh:    make(chan struct{}),
		finished:   make(chan struct{}),
		slots:      make(chan struct{}, s.cfg.MaxInflight),
		inflight:   map[uint16]func(error){},
	}
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
	c.drainOnce.Do(func() { close(c.drainCh) })
}

// refuse ends the connection after a message was not accepted: the PUBACKs already queued for
// earlier messages still go out, the jobs received after it are skipped, and the device sends the
// unacknowledged messages again when it reconnects.
func (c *conn) refuse(err error) {
	c.setReason(err)
	c.refused.Store(true)
	c.flushAndClose()
}

func (c *conn) flushAndClose() {
	c.flushOnce.Do(func() { close(c.flushClose) })
}

// serve runs the connection on the calling goroutine.
func (c *conn) serve() {
	stop := context.AfterFunc(c.ctx, func() { c.nc.Close() })
	defer stop()
	defer c.cancel()
	defer c.nc.Close()

	s := c.s
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	c.nc.SetDeadline(deadline)
	connectCtx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(connectCtx); err != nil {
			s.log.Debug("mqtt: TLS handshake failed", "remote", c.nc.RemoteAddr(), "err", err)
			return
		}
	}
	// Small: most packets are a few hundred bytes; PUBLISH bodies are read straight through.
	c.br = bufio.NewReaderSize(c.nc, 4096)

	old, ok := c.connect(connectCtx)
	if !ok {
		return
	}
	c.nc.SetDeadline(time.Time{})
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
	go c.write()
	go c.work(old)

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

	pk, err := readPacket(c.br, s.cfg.MaxPacketSize, 0)
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
		pk, err := readPacket(c.br, s.cfg.MaxPacketSize, protocolLevel311)
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
	select {
	case c.jobs <- j:
	case <-c.ctx.Done():
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

// work runs the Handler for this connection; see the comment at the top of the file.
func (c *conn) work(old *conn) {
	defer close(c.workerDone)
	if old != nil {
		t := time.NewTimer(c.s.cfg.ConnectTimeout)
		select {
		case <-old.finished:
		case <-t.C:
			c.s.log.Warn("mqtt: previous connection did not finish in time", "device", c.id.DeviceID)
		}
		t.Stop()
	}
	c.s.h.Connected(c.ctx, c.id)

	drainCh := c.drainCh
	for {
		select {
		case j, ok := <-c.jobs:
			if !ok {
				return
			}
			c.pending.Add(-c.handle(j))
		case <-drainCh:
			drainCh = nil
		}
		if drainCh == nil && c.pending.Load() == 0 {
			c.flushAndClose()
		}
	}
}

// maxTelemetryBatch bounds the telemetry a connection has being stored at once.
const maxTelemetryBatch = 64

// handle runs j and, when j is telemetry and the Handler can start telemetry, every further
// telemetry job already queued (up to a batch). It returns how many jobs it consumed.
func (c *conn) handle(j job) int64 {
	if c.refused.Load() {
		c.s.metrics.publishRefused("skipped", 1)
		return 1
	}
	st, ok := c.s.h.(TelemetryStarter)
	if !ok || j.kind != pubTelemetry {
		c.run(j)
		return 1
	}
	batch := []job{j}
	var next *job
collect:
	for len(batch) < maxTelemetryBatch {
		select {
		case more, ok := <-c.jobs:
			if !ok {
				break collect // the reader is done; the worker's loop sees the close next
			}
			if more.kind != pubTelemetry {
				next = &more
				break collect
			}
			batch = append(batch, more)
		default:
			break collect
		}
	}
	c.runTelemetry(st, batch)
	if next == nil {
		return int64(len(batch))
	}
	c.run(*next)
	return int64(len(batch)) + 1
}

// runTelemetry starts storing every message of batch, then waits for each in order and queues
// its PUBACK; the first failure closes the connection, leaving it and the rest unacknowledged.
func (c *conn) runTelemetry(st TelemetryStarter, batch []job) {
	if c.ctx.Err() != nil {
		return
	}
	waits := make([]func(context.Context) error, 0, len(batch))
	var startErr error
	for _, j := range batch {
		wait, err := st.StartTelemetry(c.id, Message{Topic: j.topic, Properties: j.props, Payload: j.payload, QoS: j.qos})
		if err != nil {
			startErr = err
			break
		}
		waits = append(waits, wait)
	}
	done := 0
	for i, wait := range waits {
		if err := wait(c.ctx); err != nil {
			startErr = err
			break
		}
		done++
		if batch[i].qos == 1 {
			c.send(c.ctx, encodePuback(batch[i].id))
			c.s.metrics.publishAcked(pubTelemetry)
		}
	}
	if startErr != nil {
		c.s.metrics.handlerRefused(startErr)
		c.s.metrics.publishRefused("skipped", len(batch)-done-1)
		c.s.log.Warn("mqtt: telemetry not accepted; closing the connection", "device", c.id.DeviceID, "err", startErr)
		c.refuse(fmt.Errorf("telemetry handler: %w", startErr))
	}
}

func (c *conn) run(j job) {
	if c.ctx.Err() != nil {
		return
	}
	s := c.s
	var reply []byte // twin response frame, sent after the PUBACK
	switch j.kind {
	case pubTelemetry:
		msg := Message{Topic: j.topic, Properties: j.props, Payload: j.payload, QoS: j.qos}
		if err := s.h.Telemetry(c.ctx, c.id, msg); err != nil {
			s.metrics.handlerRefused(err)
			s.log.Warn("mqtt: telemetry not accepted; closing the connection", "device", c.id.DeviceID, "err", err)
			c.refuse(fmt.Errorf("telemetry handler: %w", err))
			return
		}
	case pubTwinGet:
		r := s.h.TwinGet(c.ctx, c.id, j.rid)
		reply = c.twinReply(j.rid, r)
	case pubTwinReported:
		r := s.h.TwinReported(c.ctx, c.id, j.rid, j.payload)
		reply = c.twinReply(j.rid, r)
	case pubMethodResponse:
		s.h.MethodResponse(c.ctx, c.id, j.rid, j.status, j.payload)
	}
	if j.qos == 1 {
		c.send(c.ctx, encodePuback(j.id))
		s.metrics.publishAcked(j.kind)
	}
	if reply != nil {
		c.send(c.ctx, reply)
	}
}

// twinReply encodes a twin response when the device subscribed to $iothub/twin/res/#;
// IoT Hub has nowhere else to put it.
func (c *conn) twinReply(rid string, r TwinResponse) []byte {
	if _, ok := c.sess.granted(subTwinResponses); !ok {
		return nil
	}
	f, err := encodePublish(twinResponseTopic(rid, r), 0, 0, r.Body)
	if err != nil {
		c.s.log.Warn("mqtt: twin response not sent", "device", c.id.DeviceID, "err", err)
	}
	return f
}

// write is the writer goroutine.
func (c *conn) write() {
	defer close(c.writerDone)
	for {
		select {
		case f := <-c.out:
			if err := c.writeBatch(f); err != nil {
				c.abort(fmt.Errorf("write: %w", err))
				return
			}
		case <-c.flushClose:
			for {
				select {
				case f := <-c.out:
					if err := c.writeBatch(f); err != nil {
						c.abort(fmt.Errorf("write: %w", err))
						return
					}
					continue
				default:
				}
				c.nc.Close()
				return
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// writeBatch writes f and whatever else is queued, then flushes once, through a buffer borrowed
// for the batch.
func (c *conn) writeBatch(f []byte) error {
	bw := c.s.writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() {
		bw.Reset(nil)
		c.s.writers.Put(bw)
	}()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if _, err := bw.Write(f); err != nil {
		return err
	}
	for len(c.out) > 0 && bw.Buffered() < 64<<10 {
		if _, err := bw.Write(<-c.out); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// send queues a frame for the writer.
func (c *conn) send(ctx context.Context, f []byte) error {
	select {
	case c.out <- f:
		return nil
	case <-c.writerDone:
		return ErrConnectionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserve takes an in-flight slot and a packet id for a QoS 1 delivery.
func (c *conn) reserve(ctx context.Context, acked func(error)) (uint16, error) {
	select {
	case c.slots <- struct{}{}:
	case <-c.writerDone:
		return 0, ErrConnectionClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if acked == nil {
		acked = func(error) {}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == nil {
		<-c.slots
		return 0, ErrConnectionClosed
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
	close(c.jobs)
	<-c.workerDone
	s.unregister(c)
	s.metrics.conn(-1)
	c.flushAndClose()
	<-c.writerDone
	c.cancel()
	c.nc.Close()

	c.mu.Lock()
	inflight := c.inflight
	c.inflight = nil
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
