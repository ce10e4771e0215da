package amqp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// replyMarker marks a client receiver link that takes the replies of a
// request/response node.
type replyMarker struct{}

func (*replyMarker) isLink() {}

// Replies is what a Handler returns for a client's receiver on a
// request/response node address (the reply link of $management).
var replyLink = &replyMarker{}

// ReplyLink is returned by Handler.Attach for the receiver half of an RPC
// node: the engine sends the node's responses on it.
func ReplyLink() Link { return replyLink }

func isCBS(addr string) bool { return strings.EqualFold(addr, "$cbs") }

// runReplies sends queued responses, pre-settled, as credit allows.
func runReplies(ctx context.Context, s *Sender, q <-chan *wire.Message) {
	for {
		select {
		case m := <-q:
			b, err := m.Marshal()
			if err != nil {
				s.Conn().log.Warn("amqp: encoding a response", "err", err)
				continue
			}
			if err := s.Send(ctx, b, SendOptions{Settled: true}); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// serveRequest answers one request and routes the reply.
func (c *Conn) serveRequest(l *link, rpc *RPC, d *Delivery) {
	d.Accept()
	req, err := d.Message()
	var resp *wire.Message
	if err != nil {
		resp = Response(400, "The request is not a valid AMQP message: "+err.Error(), nil)
	} else {
		resp = rpc.Serve(l.ctx, req)
	}
	if resp == nil || req == nil || req.Properties == nil {
		return
	}
	if resp.Properties == nil {
		resp.Properties = &wire.Properties{}
	}
	// The correlation id is the request's message id, of the same type
	// (the Go SDKs drop a reply whose correlation-id is not a string).
	resp.Properties.CorrelationID = req.Properties.MessageID
	target := c.replyLinkFor(l, req.Properties.ReplyTo)
	if target == nil {
		c.log.Info("amqp: no reply link for a request", "node", attachAddress(l.attach), "reply-to", req.Properties.ReplyTo)
		return
	}
	select {
	case target.replies <- resp:
	case <-target.ctx.Done():
	case <-time.After(30 * time.Second):
		c.log.Warn("amqp: reply link not draining; response dropped", "node", attachAddress(l.attach))
	}
}

// replyLinkFor finds where a response goes: the reply link whose target
// address is reply-to (Go), else whose name is reply-to (JavaScript), else
// the newest reply link whose source is the node the request went to (the
// Node IoT SDKs send reply-to "cbs", matching neither).
func (c *Conn) replyLinkFor(req *link, replyTo string) *link {
	node := ""
	if req.attach.Target != nil {
		node = req.attach.Target.Address
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var byName, byNode *link
	for _, s := range c.sessions {
		for _, l := range s.byRemote {
			if l.replies == nil || l.detached {
				continue
			}
			if replyTo != "" && l.attach.Target != nil && l.attach.Target.Address == replyTo {
				return l
			}
			if replyTo != "" && l.name == replyTo {
				byName = l
			}
			if l.attach.Source != nil && strings.EqualFold(l.attach.Source.Address, node) {
				if byNode == nil || (l.s == req.s && byNode.s != req.s) || (l.s == byNode.s && l.handle > byNode.handle) {
					byNode = l
				}
			}
		}
	}
	if byName != nil {
		return byName
	}
	return byNode
}

// Response builds a request/response reply with status-code (an AMQP
// int, as the Go SDKs insist) and status-description.
func Response(status int32, description string, body any) *wire.Message {
	m := &wire.Message{
		Properties: &wire.Properties{},
		ApplicationProperties: wire.Map{
			{Key: "status-code", Value: status},
			{Key: "status-description", Value: description},
		},
	}
	if body != nil {
		m.Value, m.HasValue = body, true
	}
	return m
}

// RPCError is a request/response failure with its status code.
type RPCError struct {
	Status      int32
	Description string
	Condition   wire.Symbol
}

func (e *RPCError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Description) }

// ErrorResponse renders err as a reply.
func ErrorResponse(err error) *wire.Message {
	var re *RPCError
	if !errors.As(err, &re) {
		re = &RPCError{Status: 500, Description: err.Error(), Condition: "amqp:internal-error"}
	}
	m := Response(re.Status, re.Description, nil)
	if re.Condition != "" {
		m.ApplicationProperties = append(m.ApplicationProperties, wire.KV{Key: "error-condition", Value: re.Condition})
	}
	return m
}

// TokenRequest is a CBS put-token.
type TokenRequest struct {
	// Type is "servicebus.windows.net:sastoken" or "jwt".
	Type string
	// Audience is the name the token is put for, as sent.
	Audience string
	// Token is the SAS token or JWT ("Bearer " prefix removed).
	Token string
}

// Claim is what a put-token (or SASL PLAIN) grants on a connection.
type Claim struct {
	// Audience is the normalized audience (NormalizeAudience) the claim
	// covers, and everything below it.
	Audience string
	Expires  time.Time
	// Principal is the handler's record of who holds the claim.
	Principal any
}

type claimState struct {
	Claim
	timer *time.Timer
}

// NormalizeAudience lower-cases an audience and drops its scheme,
// percent-encoding, port and trailing slash, so "amqps://NS.host:5671/eh/",
// "sb://ns.host/eh" and the IoT SDKs' encoded "ns.host%2Feh" compare equal.
func NormalizeAudience(aud string) string {
	a := strings.TrimSpace(aud)
	if un, err := url.PathUnescape(a); err == nil {
		a = un
	}
	a = strings.ToLower(a)
	if i := strings.Index(a, "://"); i >= 0 {
		a = a[i+3:]
	}
	a = strings.TrimSuffix(a, "/.default")
	host, path, _ := strings.Cut(a, "/")
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	path = strings.Trim(path, "/")
	if path == "" {
		return host
	}
	return host + "/" + path
}

// ClaimFor returns the live claim covering audience: put for it or for a
// path above it.
func (c *Conn) ClaimFor(audience string) (Claim, bool) {
	want := NormalizeAudience(audience)
	now := c.srv.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *claimState
	for key, cl := range c.claims {
		if !cl.Expires.IsZero() && !now.Before(cl.Expires) {
			continue
		}
		if key == want || strings.HasPrefix(want, key+"/") {
			if best == nil || len(key) > len(best.Audience) {
				best = cl
			}
		}
	}
	if best == nil {
		return Claim{}, false
	}
	return best.Claim, true
}

// Claims returns the connection's live claims.
func (c *Conn) Claims() []Claim {
	now := c.srv.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Claim
	for _, cl := range c.claims {
		if cl.Expires.IsZero() || now.Before(cl.Expires) {
			out = append(out, cl.Claim)
		}
	}
	return out
}

// putClaimLocked stores a claim and arms its expiry. Needs mu.
func (c *Conn) putClaimLocked(cl Claim) {
	cl.Audience = NormalizeAudience(cl.Audience)
	if old := c.claims[cl.Audience]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	st := &claimState{Claim: cl}
	if !cl.Expires.IsZero() {
		expires := cl.Expires
		st.timer = time.AfterFunc(time.Until(expires)+10*time.Millisecond, func() { c.expireClaim(cl.Audience, expires) })
	}
	c.claims[cl.Audience] = st
}

// expireClaim detaches the links a claim authorized, unless it was renewed.
func (c *Conn) expireClaim(audience string, expires time.Time) {
	c.mu.Lock()
	cl := c.claims[audience]
	if cl == nil || !cl.Expires.Equal(expires) {
		c.mu.Unlock()
		return
	}
	delete(c.claims, audience)
	var links []*link
	for _, s := range c.sessions {
		for _, l := range s.byRemote {
			if l.claim != "" && NormalizeAudience(l.claim) == audience && !l.detached {
				links = append(links, l)
			}
		}
	}
	c.mu.Unlock()
	for _, l := range links {
		l.detachWith(wire.Errorf("amqp:unauthorized-access",
			"The token for '%s' expired at %s; put a new token on $cbs before it expires.", audience, expires.UTC().Format(time.RFC3339)))
	}
}

// serveCBS answers a $cbs request.
func (c *Conn) serveCBS(ctx context.Context, req *wire.Message) *wire.Message {
	op := req.ApplicationProperties.String("operation")
	if op != "put-token" {
		return ErrorResponse(&RPCError{Status: 400, Description: fmt.Sprintf("Unsupported $cbs operation %q; only put-token is served.", op)})
	}
	tr := TokenRequest{Type: req.ApplicationProperties.String("type"), Audience: req.ApplicationProperties.String("name")}
	switch v := req.Value.(type) {
	case string:
		tr.Token = v
	case []byte:
		tr.Token = string(v)
	default:
		if b := req.Body(); b != nil {
			tr.Token = string(b)
		}
	}
	tr.Token = strings.TrimSpace(tr.Token)
	if t, ok := strings.CutPrefix(tr.Token, "Bearer "); ok {
		tr.Token, tr.Type = strings.TrimSpace(t), "jwt"
	}
	if tr.Audience == "" || tr.Token == "" {
		return ErrorResponse(&RPCError{Status: 400, Description: "put-token needs a 'name' (the audience) and the token as the body."})
	}
	cl, err := c.srv.cfg.Handler.PutToken(ctx, c, tr)
	if err != nil {
		var re *RPCError
		if errors.As(err, &re) {
			c.log.Info("amqp: put-token refused", "audience", tr.Audience, "status", re.Status, "description", re.Description)
		}
		return ErrorResponse(err)
	}
	if cl.Audience == "" {
		cl.Audience = tr.Audience
	}
	c.mu.Lock()
	c.putClaimLocked(cl)
	c.mu.Unlock()
	return Response(200, "OK", nil)
}
