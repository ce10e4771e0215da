package amqp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Conn is one client connection.
type Conn struct {
	srv  *Server
	nc   net.Conn
	info ConnInfo
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	// Set during the handshake, read-only after.
	host          string
	peer          *wire.Open
	peerMaxFrame  uint32
	peerIdle      time.Duration
	saslMechanism string
	saslHost      string

	mu       sync.Mutex
	sessions map[uint16]*session // by the client's channel
	ourChans map[uint16]bool     // our channels in use
	claims   map[string]*claimState
	values   map[any]any
	closing  bool

	// The write side: frames are encoded into wbuf under wmu and written
	// by the writer goroutine, so no caller blocks on the socket.
	wmu       sync.Mutex
	wbuf      []byte
	spare     []byte
	wake      chan struct{}
	space     chan struct{}
	wclosed   bool
	lastWrite atomic.Int64
	wdone     chan struct{}
	// writerStarted is set once the writer runs (Shutdown reads it from
	// another goroutine).
	writerStarted atomic.Bool
}

func newConn(s *Server, nc net.Conn, info ConnInfo) *Conn {
	c := &Conn{
		srv: s, nc: nc, info: info, log: s.cfg.Logger.With("remote", nc.RemoteAddr().String()),
		sessions: map[uint16]*session{}, ourChans: map[uint16]bool{}, claims: map[string]*claimState{},
		wake: make(chan struct{}, 1), space: make(chan struct{}), wdone: make(chan struct{}),
	}
	return c
}

// Host is the host name the client asked for (open's hostname, else the
// TLS server name, else SASL's), lower-cased, without a port.
func (c *Conn) Host() string { return c.host }

// Info describes the transport.
func (c *Conn) Info() ConnInfo { return c.info }

// SASLMechanism is the mechanism the client used ("" without SASL).
func (c *Conn) SASLMechanism() string { return c.saslMechanism }

// Context ends when the connection closes.
func (c *Conn) Context() context.Context { return c.ctx }

// Logger logs with the connection's attributes.
func (c *Conn) Logger() *slog.Logger { return c.log }

// SetValue keeps handler state on the connection.
func (c *Conn) SetValue(k, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.values == nil {
		c.values = map[any]any{}
	}
	c.values[k] = v
}

// Value returns state kept with SetValue.
func (c *Conn) Value(k any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[k]
}

func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(h, ".")
}

func (c *Conn) serve(parent context.Context) {
	c.ctx, c.cancel = context.WithCancelCause(parent)
	defer c.cancel(errClosedByPeer)
	err := c.run()
	c.teardown(err)
}

func (c *Conn) run() error {
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout)) //nolint:errcheck
	br := bufio.NewReaderSize(c.nc, 64<<10)
	if err := c.handshake(c.ctx, br); err != nil {
		c.log.Debug("amqp: handshake failed", "err", err)
		c.nc.Close()
		return err
	}
	f, err := wire.ReadFrame(br, c.srv.cfg.MaxFrameSize)
	open, ok := f.Body.(*wire.Open)
	if err == nil && (!ok || f.Type != wire.FrameAMQP) {
		err = fmt.Errorf("expected open, got %T", f.Body)
	}
	if err != nil {
		// Say why before hanging up: an open (required first) and a close.
		if !isEOF(err) {
			b, _ := wire.AppendFrame(nil, wire.FrameAMQP, 0, &wire.Open{ContainerID: c.srv.cfg.ContainerID}, nil)
			b, _ = wire.AppendFrame(b, wire.FrameAMQP, 0, &wire.Close{Error: wire.Errorf("amqp:connection:framing-error", "%v", err)}, nil)
			c.nc.Write(b) //nolint:errcheck
		}
		c.nc.Close()
		return fmt.Errorf("amqp: reading open: %w", err)
	}
	c.peer = open
	c.peerMaxFrame = open.MaxFrameSize
	if c.peerMaxFrame == 0 || c.peerMaxFrame > 1<<20 {
		c.peerMaxFrame = 1 << 20 // our own frames never need more
	}
	if c.peerMaxFrame < wire.MinMaxFrameSize {
		c.peerMaxFrame = wire.MinMaxFrameSize
	}
	c.peerIdle = time.Duration(open.IdleTimeout) * time.Millisecond
	c.host = normalizeHost(open.Hostname)
	if c.host == "" && c.info.TLS != nil {
		c.host = normalizeHost(c.info.TLS.ServerName)
	}
	if c.host == "" {
		c.host = normalizeHost(c.saslHost)
	}
	c.nc.SetDeadline(time.Time{}) //nolint:errcheck
	c.writerStarted.Store(true)
	go c.writer()

	cfg := c.srv.cfg
	chMax := uint16(min(cfg.MaxSessions-1, 0xffff))
	ours := &wire.Open{ContainerID: cfg.ContainerID, Hostname: c.host, MaxFrameSize: cfg.MaxFrameSize,
		ChannelMax: chMax, HasChannelMax: true, IdleTimeout: uint32(cfg.IdleTimeout.Milliseconds())}
	if err := c.send(0, ours, nil); err != nil {
		return err
	}
	if err := cfg.Handler.Open(c.ctx, c); err != nil {
		return c.closeWith(asAMQPError(err))
	}
	c.log = c.log.With("host", c.host)
	return c.readLoop(br)
}

// readLoop dispatches frames until the connection ends.
func (c *Conn) readLoop(br *bufio.Reader) error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(2 * c.srv.cfg.IdleTimeout)) //nolint:errcheck
		f, err := wire.ReadFrame(br, c.srv.cfg.MaxFrameSize)
		if err != nil {
			if isEOF(err) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return c.closeWith(wire.Errorf("amqp:resource-limit-exceeded", "Nothing was received for %s (twice the idle-time-out); closing.", 2*c.srv.cfg.IdleTimeout))
			}
			cond := wire.Symbol("amqp:connection:framing-error")
			if !errors.Is(err, wire.ErrFrameTooLarge) && strings.Contains(err.Error(), "frame body") {
				cond = "amqp:decode-error"
			}
			return c.closeWith(&wire.Error{Condition: cond, Description: err.Error()})
		}
		if f.Body == nil {
			continue // heartbeat
		}
		if f.Type != wire.FrameAMQP {
			return c.closeWith(wire.Errorf("amqp:connection:framing-error", "a SASL frame after the SASL exchange"))
		}
		if err := c.dispatch(f); err != nil {
			if errors.Is(err, errClosedByPeer) {
				return err
			}
			var ae *wire.Error
			if errors.As(err, &ae) {
				return c.closeWith(ae)
			}
			return c.closeWith(wire.Errorf("amqp:internal-error", "%v", err))
		}
	}
}

// dispatch handles one performative.
func (c *Conn) dispatch(f wire.Frame) error {
	switch p := f.Body.(type) {
	case *wire.Begin:
		return c.onBegin(f.Channel, p)
	case *wire.Close:
		if p.Error != nil {
			c.log.Debug("amqp: client closed with error", "err", p.Error)
		}
		c.send(0, &wire.Close{}, nil) //nolint:errcheck
		return errClosedByPeer
	case *wire.Open:
		return wire.Errorf("amqp:illegal-state", "a second open on one connection")
	}
	c.mu.Lock()
	s := c.sessions[f.Channel]
	c.mu.Unlock()
	if s == nil {
		return wire.Errorf("amqp:connection:framing-error", "%T on channel %d, which has no session", f.Body, f.Channel)
	}
	switch p := f.Body.(type) {
	case *wire.End:
		return c.onEnd(s, p)
	case *wire.Attach:
		return c.onAttach(s, p)
	case *wire.Flow:
		return c.onFlow(s, p)
	case *wire.Transfer:
		return c.onTransfer(s, p)
	case *wire.Disposition:
		return c.onDisposition(s, p)
	case *wire.Detach:
		return c.onDetach(s, p)
	}
	return wire.Errorf("amqp:not-implemented", "unexpected %T", f.Body)
}

// send encodes one frame for the writer.
func (c *Conn) send(channel uint16, body wire.Marshaler, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(channel, body, payload)
}

func (c *Conn) sendLocked(channel uint16, body wire.Marshaler, payload []byte) error {
	if c.wclosed {
		return net.ErrClosed
	}
	var err error
	c.wbuf, err = wire.AppendFrame(c.wbuf, wire.FrameAMQP, channel, body, payload)
	if err != nil {
		return fmt.Errorf("amqp: encode %T: %w", body, err)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// waitSpace blocks while more than the write buffer is waiting for the
// socket (a slow reader slows its senders instead of growing memory).
func (c *Conn) waitSpace(ctx context.Context) error {
	for {
		c.wmu.Lock()
		n, closed, ch := len(c.wbuf), c.wclosed, c.space
		c.wmu.Unlock()
		if closed {
			return net.ErrClosed
		}
		if n < c.srv.cfg.WriteBuffer {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-c.wdone:
			return net.ErrClosed
		}
	}
}

// writer writes what was encoded, and a heartbeat when the connection
// would otherwise be silent for half the client's idle-time-out.
func (c *Conn) writer() {
	defer close(c.wdone)
	var tick <-chan time.Time
	if c.peerIdle > 0 {
		t := time.NewTicker(c.peerIdle / 3)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.wake:
		case <-tick:
		case <-c.ctx.Done():
		}
		c.wmu.Lock()
		buf, closed := c.wbuf, c.wclosed
		c.wbuf = c.spare[:0]
		c.wmu.Unlock()
		if len(buf) == 0 && !closed && c.peerIdle > 0 &&
			time.Since(time.Unix(0, c.lastWrite.Load())) >= c.peerIdle/3 {
			buf = append(buf, wire.EmptyFrame[:]...)
		}
		if len(buf) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
			if _, err := c.nc.Write(buf); err != nil {
				c.cancel(fmt.Errorf("amqp: write: %w", err))
				c.nc.Close()
				c.markWriterClosed()
				return
			}
			c.lastWrite.Store(time.Now().UnixNano())
		}
		c.wmu.Lock()
		// buf becomes the next spare; a large one is dropped instead —
		// and spare with it, since spare's array is now wbuf's.
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		close(c.space)
		c.space = make(chan struct{})
		// Ending (the context) is read before what is queued, under wmu: a
		// frame queued before the connection was ended — the close that
		// answers the peer's, which a client's close waits for — is then
		// always seen and written before the socket closes.
		ending := c.ctx.Err() != nil
		pending := len(c.wbuf)
		if ending && !closed && pending == 0 {
			c.wclosed = true
		}
		c.wmu.Unlock()
		if closed && pending == 0 {
			c.nc.Close()
			return
		}
		if ending && !closed && pending == 0 {
			c.nc.Close()
			return
		}
	}
}

func (c *Conn) markWriterClosed() {
	c.wmu.Lock()
	c.wclosed = true
	c.wmu.Unlock()
}

// closeWith sends close with err, lets the writer flush and ends the
// connection.
func (c *Conn) closeWith(e *wire.Error) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.wmu.Lock()
	if !c.wclosed {
		c.sendLocked(0, &wire.Close{Error: e}, nil) //nolint:errcheck
		c.wclosed = true
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.wmu.Unlock()
	if e != nil {
		c.srv.cfg.Metrics.refused(string(e.Condition))
		c.log.Info("amqp: closing connection", "condition", e.Condition, "description", e.Description)
		return e
	}
	return errClosedByPeer
}

// CloseWithError closes the connection from outside the reader.
func (c *Conn) CloseWithError(e *wire.Error) {
	c.closeWith(e) //nolint:errcheck
	if c.writerStarted.Load() {
		select {
		case <-c.wdone:
		case <-time.After(5 * time.Second):
		}
	}
	c.nc.Close()
}

// teardown ends every link and waits for the writer.
func (c *Conn) teardown(err error) {
	c.mu.Lock()
	var links []*link
	for _, s := range c.sessions {
		for _, l := range s.byRemote {
			links = append(links, l)
		}
	}
	c.sessions = map[uint16]*session{}
	for _, cl := range c.claims {
		if cl.timer != nil {
			cl.timer.Stop()
		}
	}
	c.mu.Unlock()
	for _, l := range links {
		l.terminate()
	}
	if err == nil {
		err = errClosedByPeer
	}
	c.cancel(err)
	if c.writerStarted.Load() {
		select {
		case <-c.wdone:
		case <-time.After(5 * time.Second):
		}
	}
	c.markWriterClosed()
	c.nc.Close()
}

// asAMQPError turns a handler error into an AMQP error.
func asAMQPError(err error) *wire.Error {
	var ae *wire.Error
	if errors.As(err, &ae) {
		return ae
	}
	return wire.Errorf("amqp:internal-error", "%v", err)
}
