package amqp

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/coder/websocket"
)

// WebSocketSubprotocols are the subprotocols AMQP over WebSocket clients
// ask for: AMQPWSB10 (the JavaScript and Node IoT SDKs) and amqp (the Go
// SDKs' examples).
func WebSocketSubprotocols() []string { return []string{"AMQPWSB10", "amqp"} }

// IsWebSocketRequest reports whether r asks for AMQP over WebSocket (the
// IoT path /$iothub/websocket is shared with MQTT, told apart by the
// subprotocol).
func IsWebSocketRequest(r *http.Request) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			p = strings.TrimSpace(p)
			for _, want := range WebSocketSubprotocols() {
				if strings.EqualFold(p, want) {
					return true
				}
			}
		}
	}
	return false
}

// WebSocketHandler serves AMQP over WebSocket: binary messages carrying
// the AMQP byte stream, split and joined anywhere.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: WebSocketSubprotocols()})
		if err != nil {
			return // Accept wrote the error response
		}
		ws.SetReadLimit(int64(s.cfg.MaxFrameSize) + 1<<16)
		ctx := r.Context()
		info := ConnInfo{TLS: r.TLS, WebSocket: true}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.RemoteAddr = ap.Addr().Unmap()
		}
		nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
		s.ServeConnInfo(ctx, nc, info)
	})
}
