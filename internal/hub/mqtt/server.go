package mqtt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Server is IoT Hub's MQTT device endpoint. Create it with New, feed it connections with Serve
// or ServeConn (or WebSocketHandler), push messages to devices with Deliver, and end it with
// Shutdown or Close.
type Server struct {
	cfg  Config
	auth Authenticator
	h    Handler
	log  *slog.Logger

	metrics *Metrics // set by SetMetrics before serving

	wg sync.WaitGroup // one count per connection being served
	// writers lends connections a write buffer only while they write: an
	// idle device then holds no 16 KiB buffer of its own.
	writers sync.Pool
	// readers lends connections a read buffer while bytes of a packet are buffered.
	readers sync.Pool

	mu        sync.Mutex // guards the fields below; see doc.go for the lock order
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}     // every connection being served, accepted or not
	admitted  int                    // connections of conns past the MaxConnections check
	live      map[DeviceKey]*conn    // the accepted connection of each device key
	sessions  map[DeviceKey]*session // persistent (clean=false) sessions, connected or not
}

// New returns a server. It starts no goroutines.
func New(cfg Config, auth Authenticator, h Handler, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if auth == nil || h == nil {
		return nil, errors.New("mqtt: New needs an Authenticator and a Handler")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg.withDefaults(),
		auth:      auth,
		h:         h,
		log:       logger,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		live:      map[DeviceKey]*conn{},
		sessions:  map[DeviceKey]*session{},
	}
	s.writers.New = func() any { return bufio.NewWriterSize(nil, writeBufferSize) }
	s.readers.New = func() any { return bufio.NewReaderSize(nil, readBufferSize) }
	return s, nil
}

// writeBufferSize is the size of the write buffers connections borrow.
const writeBufferSize = 16 << 10

// readBufferSize is a borrowed read buffer's: most packets are a few hundred bytes, and PUBLISH
// bodies larger than it are read straight through.
const readBufferSize = 4096

// Serve accepts connections from ln (normally a tls.Listener with Outpost's certificates, which
// should request client certificates for X.509 devices) and serves each on its own goroutine.
// It returns when ctx is done (ctx.Err()) or after Shutdown or Close (ErrServerClosed); it
// closes ln. Connections it accepted outlive it: end them with Shutdown or Close.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	// Connections end through Shutdown or Close, not through the accept loop's ctx.
	connCtx := context.WithoutCancel(ctx)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("mqtt: accept: %w", err)
			}
			// Out of file descriptors and the like: wait and try again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("mqtt: accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		backoff = 0
		c, ok := s.track(connCtx, nc)
		if !ok {
			nc.Close()
			continue
		}
		go func() {
			old, ok := c.start()
			if !ok {
				s.untrack(c)
				return
			}
			// A fresh goroutine for the life of the connection: the handshake grew this
			// one's stack, and an idle device should cost a small one.
			go func() {
				defer s.untrack(c)
				c.serveLive(old)
			}()
		}()
	}
}

// ServeConn serves one connection and returns when it ends. nc may be a *tls.Conn (the
// handshake is done here, bounded by ConnectTimeout) or any net.Conn that offers
// ConnectionState() tls.ConnectionState for its peer certificates. Cancelling ctx ends the
// connection at once.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	c, ok := s.track(ctx, nc)
	if !ok {
		nc.Close()
		return
	}
	defer s.untrack(c)
	c.serve()
}

// SetMetrics makes the server record m; call it before serving.
func (s *Server) SetMetrics(m *Metrics) { s.metrics = m }

func (s *Server) track(ctx context.Context, nc net.Conn) (*conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	if len(s.conns)-s.admitted >= s.cfg.MaxPending {
		// Too many handshakes at once: refusing them one by one with a
		// CONNACK would cost each its TLS handshake first.
		s.metrics.connRefused(connackNone)
		return nil, false
	}
	c := newConn(ctx, s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.admitted {
		s.admitted--
	}
	s.mu.Unlock()
	s.wg.Done()
}

// admit counts c among the admitted connections unless MaxConnections
// are already.
func (s *Server) admit(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxConnections > 0 && s.admitted >= s.cfg.MaxConnections {
		return false
	}
	s.admitted++
	c.admitted = true
	return true
}

// Connections is how many connections are admitted (past CONNECT's
// connection cap) and how many are still in their handshake or CONNECT.
func (s *Server) Connections() (admitted, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitted, len(s.conns) - s.admitted
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// stopAccepting marks the server closing, closes its listeners and returns its connections.
func (s *Server) stopAccepting() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Shutdown stops accepting connections and drains the open ones: packets already received are
// handed to the Handler and acknowledged, queued packets are written, then each connection is
// closed (devices reconnect elsewhere). Packets arriving during the drain are not acknowledged,
// so devices send them again. When ctx ends first, the remaining connections are closed at once
// as by Close, and ctx.Err() is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, c := range s.stopAccepting() {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range s.stopAccepting() {
			c.abort(ErrServerClosed)
		}
		<-done
		return ctx.Err()
	}
}

// Close closes every listener and connection at once, cancelling the Handler calls in progress,
// and waits for the connection goroutines to end.
func (s *Server) Close() error {
	for _, c := range s.stopAccepting() {
		c.abort(ErrServerClosed)
	}
	s.wg.Wait()
	return nil
}

// register makes c the live connection of its device key, attaches its session and queues the
// CONNACK before anyone else can find c. It returns the connection c takes over, if any.
func (s *Server) register(c *conn, clean bool) (old *conn, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	key := c.id.Key()
	sess, present := s.sessions[key]
	switch {
	case clean:
		delete(s.sessions, key)
		sess, present = newSession(), false
	case !present:
		sess = newSession()
		s.sessions[key] = sess
	}
	c.sess = sess
	c.send(context.Background(), encodeConnack(present, connackAccepted)) // the queue is empty: this cannot block
	old = s.live[key]
	s.live[key] = c
	c.setLive()
	s.metrics.conn(1)
	return old, true
}

// unregister removes c from the live connections unless another connection has taken over.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := c.id.Key()
	if s.live[key] == c {
		delete(s.live, key)
	}
}

// Deliver sends a message to the connected device key: a C2D message (QoS 1 when the device
// subscribed with QoS 1; d.Acked reports its PUBACK), a desired-properties patch or a method
// request (both QoS 0). It returns once the message is queued for writing. It returns
// ErrNotConnected when the key has no connection and ErrNotSubscribed when the device has not
// subscribed to the message's topic; it waits for room in the write queue and, for QoS 1, for a
// free in-flight slot, until ctx ends.
func (s *Server) Deliver(ctx context.Context, key DeviceKey, d Delivery) error {
	s.mu.Lock()
	c := s.live[key]
	s.mu.Unlock()
	if c == nil || c.isDraining() {
		return ErrNotConnected
	}
	topic, sub, err := deliveryTopic(c.id, d)
	if err != nil {
		return err
	}
	qos, ok := c.sess.granted(sub)
	if !ok {
		return ErrNotSubscribed
	}
	if d.Kind != DeliverC2D {
		qos = 0
	}
	if qos == 0 {
		f, err := encodePublish(topic, 0, 0, d.Payload)
		if err != nil {
			return err
		}
		if err := c.send(ctx, f); err != nil {
			return err
		}
		if d.Acked != nil {
			d.Acked(nil)
		}
		return nil
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	id, err := c.reserve(ctx, d.Acked)
	if err != nil {
		return err
	}
	f, _ := encodePublish(topic, 1, id, d.Payload)
	if err := c.send(ctx, f); err != nil {
		c.release(id)
		return err
	}
	return nil
}

// IsConnected reports whether the device key has a connection.
func (s *Server) IsConnected(key DeviceKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[key] != nil
}

// session is the state a persistent session keeps across connections: its subscriptions.
// In-flight C2D messages are not kept; the hub redelivers what was never acknowledged.
type session struct {
	mu   sync.Mutex
	subs map[subscription]byte // granted QoS
}

func newSession() *session { return &session{subs: map[subscription]byte{}} }

func (s *session) granted(sub subscription) (byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.subs[sub]
	return q, ok
}

func (s *session) subscribe(sub subscription, qos byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[sub] = qos
}

func (s *session) unsubscribe(sub subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
}
