package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// WebSocketPath is where IoT Hub serves MQTT over WebSocket on port 443.
const WebSocketPath = "/$iothub/websocket"

// WebSocketHandler serves MQTT over WebSocket (subprotocol "mqtt", binary messages as a byte
// stream); mount it at WebSocketPath on the HTTPS listener. Peer certificates come from the
// request's TLS state, so X.509 devices need the HTTPS server to request client certificates.
func (s *Server) WebSocketHandler() http.Handler { return webSocketHandler{s} }

type webSocketHandler struct{ s *Server }

func (h webSocketHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !offersSubprotocol(r, "mqtt") {
		http.Error(w, `MQTT over WebSocket needs the "mqtt" subprotocol`, http.StatusBadRequest)
		return
	}
	// http.Hijacker leaves the server's ReadTimeout/WriteTimeout deadlines to the caller (net/http
	// happens to clear them on hijack); they would end a long-lived session, which sets its own.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"mqtt"},
		// Devices authenticate in CONNECT with a token they hold, never with ambient browser
		// credentials, so a cross-origin page gains nothing: skip the Origin check, which
		// device stacks that send an Origin would otherwise fail.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered the request
	}
	// After the hijack the request's context no longer follows the connection; the session's
	// own lifetime (keep-alive, Shutdown, Close) ends it.
	ctx := context.WithoutCancel(r.Context())
	nc := &webSocketConn{
		Conn:   websocket.NetConn(ctx, ws, websocket.MessageBinary),
		remote: remoteAddr(r.RemoteAddr),
	}
	if r.TLS != nil {
		nc.state = *r.TLS
	}
	h.s.ServeConn(ctx, nc)
}

// webSocketConn gives the server the real peer address and TLS state of the HTTP request.
type webSocketConn struct {
	net.Conn
	remote net.Addr
	state  tls.ConnectionState
}

func (c *webSocketConn) RemoteAddr() net.Addr                 { return c.remote }
func (c *webSocketConn) ConnectionState() tls.ConnectionState { return c.state }

func offersSubprotocol(r *http.Request, want string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if strings.EqualFold(strings.TrimSpace(p), want) {
				return true
			}
		}
	}
	return false
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return stringAddr(s)
}
