package amqp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Handler gives addresses their meaning.
type Handler interface {
	// Open is called once the client's open arrived (c.Host is known).
	// An error (a *wire.Error for a specific condition) closes the
	// connection with it.
	Open(ctx context.Context, c *Conn) error
	// PutToken checks a CBS put-token and returns the claim it grants.
	// An *RPCError chooses the status; other errors answer 500.
	PutToken(ctx context.Context, c *Conn, t TokenRequest) (Claim, error)
	// Attach resolves a client's attach (other than to $cbs) to an
	// *Inbound, *Outbound or *RPC. An error refuses the link: a *wire.Error
	// gives its condition, anything else amqp:internal-error. ctx is the
	// link's context: it ends when the link detaches or the connection
	// closes. Deliveries a client leaves unsettled at detach get no
	// OnOutcome call; the handler returns them to their queue itself.
	Attach(ctx context.Context, c *Conn, a *wire.Attach) (Link, error)
}

// PlainAuthenticator is implemented by handlers that accept SASL PLAIN
// (user = SAS key name, or IoT Hub's "{policy}@sas.root.{hub}"; password =
// key or SAS token). It returns the claims the credentials grant.
type PlainAuthenticator interface {
	AuthenticatePlain(ctx context.Context, c *Conn, user, password string) ([]Claim, error)
}

// Config configures a Server.
type Config struct {
	Handler Handler
	Logger  *slog.Logger
	// ContainerID is sent in open.
	ContainerID string
	// MaxFrameSize is the largest frame accepted (advertised in open).
	MaxFrameSize uint32
	// IdleTimeout is advertised in open; a connection silent for twice
	// as long is closed. Clients heartbeat at half of it.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds protocol headers, SASL and open.
	HandshakeTimeout time.Duration
	// MaxSessions bounds sessions per connection (channel-max + 1).
	MaxSessions int
	// MaxLinks bounds links per session (handle-max + 1).
	MaxLinks int
	// WriteBuffer is how much encoded output may wait for the socket
	// before senders block.
	WriteBuffer int
	// Now is the clock (claims' expiry).
	Now func() time.Time
	// Metrics, when set, counts connections, links, deliveries and refusals.
	Metrics *Metrics
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ContainerID == "" {
		c.ContainerID = "outpost"
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = 256 << 10
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 1024
	}
	if c.MaxLinks == 0 {
		c.MaxLinks = 1024
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = 4 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves AMQP connections.
type Server struct {
	cfg Config

	mu    sync.Mutex
	conns map[*Conn]struct{}
	done  bool
}

// NewServer builds a server.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, conns: map[*Conn]struct{}{}}
}

// SetMetrics starts recording to m; call it before serving.
func (s *Server) SetMetrics(m *Metrics) { s.cfg.Metrics = m }

// Serve accepts connections from ln until ctx ends or ln fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("amqp: accept: %w", err)
		}
		go s.ServeConn(ctx, nc)
	}
}

// ConnInfo describes the transport under a connection.
type ConnInfo struct {
	// RemoteAddr is the client's address (network rules).
	RemoteAddr netip.Addr
	// TLS is the TLS state (client certificates), nil without TLS.
	TLS *tls.ConnectionState
	// WebSocket is true for AMQP over WebSocket.
	WebSocket bool
}

// ServeConn serves one connection until it closes. TLS connections are
// handshaken first (the server name becomes the host when open has none).
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	info := ConnInfo{}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		info.RemoteAddr = ap.Addr().Unmap()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.cfg.Logger.Debug("amqp: TLS handshake failed", "remote", nc.RemoteAddr(), "err", err)
			nc.Close()
			return
		}
		st := tc.ConnectionState()
		info.TLS = &st
	}
	s.ServeConnInfo(ctx, nc, info)
}

// ServeConnInfo serves a connection whose transport is already set up
// (WebSocket).
func (s *Server) ServeConnInfo(ctx context.Context, nc net.Conn, info ConnInfo) {
	c := newConn(s, nc, info)
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.cfg.Metrics.conn(1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.cfg.Metrics.conn(-1)
	}()
	c.serve(ctx)
}

// Shutdown closes every connection with amqp:connection:forced (clients
// reconnect) and refuses new ones.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.done = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// In parallel: each waits up to 5 s for its close frame to flush.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.CloseWithError(wire.Errorf("amqp:connection:forced", "The server is shutting down; reconnect."))
		}()
	}
	wg.Wait()
}

// Conns is the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// handshake reads the protocol header(s), runs SASL when asked and
// answers the AMQP header. It returns the buffered reader to go on with.
func (c *Conn) handshake(ctx context.Context, br *bufio.Reader) error {
	id, err := wire.ReadProtocolHeader(br)
	if err != nil {
		// Answer with the header we speak, then close, as the spec says.
		c.nc.Write(wire.ProtocolHeader(wire.ProtoSASL)) //nolint:errcheck
		return err
	}
	switch id {
	case wire.ProtoSASL:
		if _, err := c.nc.Write(wire.ProtocolHeader(wire.ProtoSASL)); err != nil {
			return err
		}
		if err := c.sasl(ctx, br); err != nil {
			return err
		}
		if id, err = wire.ReadProtocolHeader(br); err != nil {
			return err
		}
		if id != wire.ProtoAMQP {
			c.nc.Write(wire.ProtocolHeader(wire.ProtoAMQP)) //nolint:errcheck
			return fmt.Errorf("amqp: protocol id %d after SASL", id)
		}
	case wire.ProtoAMQP:
		// The Node IoT SDKs skip SASL: claims come through $cbs.
	default:
		c.nc.Write(wire.ProtocolHeader(wire.ProtoSASL)) //nolint:errcheck
		return fmt.Errorf("amqp: unsupported protocol id %d", id)
	}
	_, err = c.nc.Write(wire.ProtocolHeader(wire.ProtoAMQP))
	return err
}

// Mechanisms offered, in the order clients pick from.
var saslMechanisms = []wire.Symbol{"MSSBCBS", "ANONYMOUS", "PLAIN", "EXTERNAL"}

func (c *Conn) sasl(ctx context.Context, br *bufio.Reader) error {
	out, _ := wire.AppendFrame(nil, wire.FrameSASL, 0, &wire.SASLMechanisms{Mechanisms: saslMechanisms}, nil)
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	f, err := wire.ReadFrame(br, 64<<10)
	if err != nil {
		return fmt.Errorf("amqp: sasl-init: %w", err)
	}
	init, ok := f.Body.(*wire.SASLInit)
	if !ok || f.Type != wire.FrameSASL {
		return fmt.Errorf("amqp: expected sasl-init, got %T", f.Body)
	}
	code := wire.SASLOK
	switch init.Mechanism {
	case "ANONYMOUS", "MSSBCBS", "EXTERNAL":
		c.saslMechanism = string(init.Mechanism)
	case "PLAIN":
		c.saslMechanism = "PLAIN"
		user, pass, ok := parsePlain(init.InitialResponse)
		pa, can := c.srv.cfg.Handler.(PlainAuthenticator)
		if !ok || !can {
			code = wire.SASLAuth
			break
		}
		c.saslHost = init.Hostname
		// open has not come yet: the host is SASL's, else TLS's.
		c.host = normalizeHost(init.Hostname)
		if c.host == "" && c.info.TLS != nil {
			c.host = normalizeHost(c.info.TLS.ServerName)
		}
		claims, err := pa.AuthenticatePlain(ctx, c, user, pass)
		if err != nil {
			c.log.Info("amqp: SASL PLAIN refused", "user", user, "err", err)
			code = wire.SASLAuth
			break
		}
		c.mu.Lock()
		for _, cl := range claims {
			c.putClaimLocked(cl)
		}
		c.mu.Unlock()
	default:
		code = wire.SASLAuth
	}
	out, _ = wire.AppendFrame(nil, wire.FrameSASL, 0, &wire.SASLOutcome{Code: code}, nil)
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	if code != wire.SASLOK {
		return fmt.Errorf("amqp: SASL %s refused", init.Mechanism)
	}
	return nil
}

// parsePlain splits "authzid NUL authcid NUL password".
func parsePlain(b []byte) (user, pass string, ok bool) {
	parts := splitNUL(b)
	if len(parts) != 3 {
		return "", "", false
	}
	return parts[1], parts[2], true
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, ch := range b {
		if ch == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

// errClosedByPeer ends a connection the client closed cleanly.
var errClosedByPeer = errors.New("amqp: closed by the peer")

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
