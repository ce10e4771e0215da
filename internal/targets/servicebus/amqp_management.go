package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Operations of {entity}/$management.
const (
	opRenewLock         = "com.microsoft:renew-lock"
	opPeek              = "com.microsoft:peek-message"
	opUpdateDisposition = "com.microsoft:update-disposition"
	opReceiveBySequence = "com.microsoft:receive-by-sequence-number"
	opSchedule          = "com.microsoft:schedule-message"
	opCancelScheduled   = "com.microsoft:cancel-scheduled-message"
)

// maxPeek bounds one peek.
const maxPeek = 1000

// managementLink serves the request link of {entity}/$management (the
// reply link is the engine's, amqp.ReplyLink).
func (a *amqpHandler) managementLink(ctx context.Context, c *amqp.Conn, view *namespaceView, segs []string) (amqp.Link, error) {
	e, err := a.resolve(view, segs)
	if err != nil {
		return nil, err
	}
	claim, err := a.authorize(c, e, "", true)
	if err != nil {
		return nil, err
	}
	path := e.path()
	return &amqp.RPC{Claim: claim, Serve: func(ctx context.Context, req *wire.Message) *wire.Message {
		resp, err := a.serveManagement(ctx, c, path, req)
		if err != nil {
			return amqp.ErrorResponse(err)
		}
		return resp
	}}, nil
}

func rpcErr(status int32, cond wire.Symbol, format string, args ...any) *amqp.RPCError {
	return &amqp.RPCError{Status: status, Condition: cond, Description: fmt.Sprintf(format, args...)}
}

// serveManagement answers one request on the entity at path.
func (a *amqpHandler) serveManagement(ctx context.Context, c *amqp.Conn, path string, req *wire.Message) (*wire.Message, error) {
	op := req.ApplicationProperties.String("operation")
	right := rightListen
	switch op {
	case opRenewLock, opPeek, opUpdateDisposition, opReceiveBySequence:
	case opSchedule, opCancelScheduled:
		right = rightSend
	case "com.microsoft:renew-session-lock", "com.microsoft:get-session-state", "com.microsoft:set-session-state", "com.microsoft:get-message-sessions":
		return nil, rpcErr(501, "amqp:not-implemented", "Sessions are not supported by Outpost (%s).", op)
	case "com.microsoft:add-rule", "com.microsoft:remove-rule", "com.microsoft:enumerate-rules":
		return nil, rpcErr(501, "amqp:not-implemented", "Manage subscription rules through ARM (.../subscriptions/{name}/rules), not over AMQP (%s).", op)
	default:
		return nil, rpcErr(501, "amqp:not-implemented", "The operation '%s' is not supported by Outpost's $management node; it serves %s.",
			op, strings.Join([]string{opRenewLock, opPeek, opUpdateDisposition, opReceiveBySequence, opSchedule, opCancelScheduled}, ", "))
	}
	view, err := a.namespace(ctx, c)
	if err != nil {
		return nil, asRPCError(err)
	}
	e, err := a.resolve(view, addressSegments(path))
	if err != nil {
		return nil, asRPCError(err)
	}
	if _, err := a.authorize(c, e, right, true); err != nil {
		return nil, asRPCError(err)
	}
	body, _ := req.Value.(wire.Map)
	if right == rightSend {
		if e.sub != nil || e.dlq || e.transfer {
			return nil, rpcErr(400, "com.microsoft:argument-error", "Messages are scheduled on a queue or a topic, not on '%s'.", e.path())
		}
		if op == opSchedule {
			return a.scheduleMessages(ctx, view, e, body)
		}
		return a.cancelScheduled(ctx, e, body)
	}
	if !e.receivable() {
		return nil, rpcErr(400, "com.microsoft:argument-error", "'%s' is a topic, which holds no messages: use the $management node of one of its subscriptions.", e.path())
	}
	if e.transfer {
		if op == opPeek {
			return amqp.Response(204, "No messages", nil), nil
		}
		return nil, rpcErr(404, "com.microsoft:message-not-found", "'%s' is always empty: Outpost does not forward messages.", e.path())
	}
	switch op {
	case opRenewLock:
		return a.renewLocks(ctx, e, body)
	case opPeek:
		return a.peek(ctx, e, body)
	case opUpdateDisposition:
		return a.updateDisposition(ctx, e, body)
	}
	return a.receiveBySequence(ctx, e, body)
}

// asRPCError gives an attach-style AMQP error a status.
func asRPCError(err error) error {
	var we *wire.Error
	if !errors.As(err, &we) {
		return err
	}
	status := int32(500)
	switch we.Condition {
	case "amqp:unauthorized-access":
		status = 401
	case "amqp:not-found":
		status = 404
	case "amqp:not-allowed", "amqp:not-implemented":
		status = 400
	}
	return &amqp.RPCError{Status: status, Condition: we.Condition, Description: we.Description}
}

// lockTokens reads "lock-tokens": an array (or list) of uuids.
func lockTokens(body wire.Map) ([]string, error) {
	v, _ := body.Get("lock-tokens")
	items, ok := wire.Items(v)
	switch {
	case v == nil:
		return nil, rpcErr(400, "com.microsoft:argument-error", "The request has no 'lock-tokens' (an array of uuids).")
	case !ok:
		return nil, rpcErr(400, "com.microsoft:argument-error", "'lock-tokens' is a %T, not an array of uuids.", v)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch u := it.(type) {
		case wire.UUID:
			out = append(out, u.String())
		case string:
			p, err := uuid.Parse(u)
			if err != nil {
				return nil, rpcErr(400, "com.microsoft:argument-error", "The lock token '%s' is not a uuid.", u)
			}
			out = append(out, p.String())
		default:
			return nil, rpcErr(400, "com.microsoft:argument-error", "A lock token is a %T, not a uuid.", it)
		}
	}
	return out, nil
}

func lockLost(token string) error {
	return &amqp.RPCError{Status: 410, Condition: "com.microsoft:message-lock-lost", Description: lockLostError(token).Description}
}

// renewLocks extends locks; the answer's expirations are an array of
// timestamps, in the order of the tokens.
func (a *amqpHandler) renewLocks(ctx context.Context, e amqpEntity, body wire.Map) (*wire.Message, error) {
	tokens, err := lockTokens(body)
	if err != nil {
		return nil, err
	}
	exp := wire.Array{Code: wire.TypeTimestamp, Items: make([]any, 0, len(tokens))}
	for _, tok := range tokens {
		until, err := a.h.broker.settle(ctx, e.target().key(), tok, settleRenew)
		if errors.Is(err, errLockLost) {
			return nil, lockLost(tok)
		}
		if err != nil {
			return nil, err
		}
		exp.Items = append(exp.Items, until)
	}
	return amqp.Response(200, "OK", wire.Map{{Key: "expirations", Value: exp}}), nil
}

// peek answers messages from a sequence number on, without locking them:
// a list of maps whose "message" is the encoded message; 204 when there
// are none.
func (a *amqpHandler) peek(ctx context.Context, e amqpEntity, body wire.Map) (*wire.Message, error) {
	fromV, _ := body.Get("from-sequence-number")
	from, _ := wire.AsInt64(fromV)
	countV, _ := body.Get("message-count")
	count, ok := wire.AsInt64(countV)
	if !ok || count <= 0 {
		count = 1
	}
	msgs, err := a.h.broker.peek(ctx, e.target(), uint64(max(from, 0)), int(min(count, maxPeek)))
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return amqp.Response(204, "No messages", nil), nil
	}
	list := make([]any, 0, len(msgs))
	for _, m := range msgs {
		b, err := encodeReceived(m, delivery{})
		if err != nil {
			return nil, err
		}
		list = append(list, wire.Map{{Key: "message", Value: b}})
	}
	return amqp.Response(200, "OK", wire.Map{{Key: "messages", Value: list}}), nil
}

// updateDisposition settles by lock token (the SDKs' path for deferred
// messages and for messages whose receiver link is gone): completed,
// abandoned, suspended (dead-letter), defered (the Go SDK's spelling).
func (a *amqpHandler) updateDisposition(ctx context.Context, e amqpEntity, body wire.Map) (*wire.Message, error) {
	var disp disposition
	switch status := body.String("disposition-status"); strings.ToLower(status) {
	case "completed":
		disp.how = outcomeComplete
	case "abandoned":
		disp.how = outcomeAbandon
	case "suspended":
		disp.how = outcomeDeadLetter
		disp.reason, disp.description = body.String("deadletter-reason"), body.String("deadletter-description")
	case "defered", "deferred":
		disp.how = outcomeDefer
	default:
		return nil, rpcErr(400, "com.microsoft:argument-error", "The disposition-status '%s' is not one of completed, abandoned, suspended.", status)
	}
	if props, ok := body.Get("properties-to-modify"); ok {
		if pm, ok := props.(wire.Map); ok {
			disp.properties = annotationProperties(pm)
		}
	}
	tokens, err := lockTokens(body)
	if err != nil {
		return nil, err
	}
	for _, tok := range tokens {
		err := a.h.broker.settleLocked(ctx, e.target().key(), tok, disp)
		if errors.Is(err, errLockLost) {
			return nil, lockLost(tok)
		}
		if err != nil {
			return nil, err
		}
	}
	return amqp.Response(200, "OK", wire.Map{}), nil
}

// receiveBySequence receives deferred messages by sequence number, locked
// (receiver-settle-mode 1) or removed (0): a list of maps with the
// lock-token and the encoded message, whose delivery annotations carry the
// lock token too.
func (a *amqpHandler) receiveBySequence(ctx context.Context, e amqpEntity, body wire.Map) (*wire.Message, error) {
	v, _ := body.Get("sequence-numbers")
	items, _ := wire.Items(v)
	if len(items) == 0 {
		return nil, rpcErr(400, "com.microsoft:argument-error", "The request has no 'sequence-numbers' (an array of longs).")
	}
	mode := peekLock
	if sm, ok := body.Get("receiver-settle-mode"); ok {
		if n, ok := wire.AsInt64(sm); ok && n == 0 {
			mode = receiveAndDelete
		}
	}
	list := make([]any, 0, len(items))
	for _, it := range items {
		seq, ok := wire.AsInt64(it)
		if !ok || seq <= 0 {
			return nil, rpcErr(400, "com.microsoft:argument-error", "The sequence number %v is not a positive long.", it)
		}
		m, err := a.h.broker.receiveDeferred(ctx, e.target(), uint64(seq), mode)
		if errors.Is(err, errNotDeferred) {
			return nil, rpcErr(404, "com.microsoft:message-not-found", "No deferred message of '%s' has the sequence number %d.", e.path(), seq)
		}
		if err != nil {
			return nil, err
		}
		d := delivery{}
		entry := wire.Map{}
		if mode == peekLock {
			u, err := uuid.Parse(m.LockToken)
			if err != nil {
				return nil, err
			}
			d.lockToken, d.lockedUntil = wire.UUID(u), m.LockedUntil
			entry = append(entry, wire.KV{Key: "lock-token", Value: d.lockToken})
		}
		b, err := encodeReceived(m, d)
		if err != nil {
			return nil, err
		}
		list = append(list, append(entry, wire.KV{Key: "message", Value: b}))
	}
	return amqp.Response(200, "OK", wire.Map{{Key: "messages", Value: list}}), nil
}

// scheduleMessages schedules encoded messages, each enqueued at its
// x-opt-scheduled-enqueue-time; the answer's sequence-numbers (an array of
// longs) cancel them.
func (a *amqpHandler) scheduleMessages(ctx context.Context, view *namespaceView, e amqpEntity, body wire.Map) (*wire.Message, error) {
	v, _ := body.Get("messages")
	list, ok := v.([]any)
	if !ok {
		if arr, isArray := v.(wire.Array); isArray {
			list, ok = arr.Items, true
		}
	}
	if !ok || len(list) == 0 {
		return nil, rpcErr(400, "com.microsoft:argument-error", "The request has no 'messages' (a list of maps with the encoded 'message').")
	}
	seqs := wire.Array{Code: wire.TypeLong, Items: make([]any, 0, len(list))}
	for i, it := range list {
		entry, _ := it.(wire.Map)
		raw, _ := entry.Get("message")
		b, ok := raw.([]byte)
		if !ok {
			return nil, rpcErr(400, "com.microsoft:argument-error", "Message %d of the request has no binary 'message'.", i)
		}
		w, err := wire.ParseMessage(b)
		if err != nil {
			return nil, rpcErr(400, "com.microsoft:argument-error", "Message %d of the request cannot be decoded: %v.", i, err)
		}
		sm, err := fromAMQP(w)
		if err != nil {
			return nil, asRPCError(err)
		}
		if sm.scheduled.IsZero() {
			return nil, rpcErr(400, "com.microsoft:argument-error", "Message %d of the request has no x-opt-scheduled-enqueue-time.", i)
		}
		seq, err := a.schedule(ctx, view, e, sm)
		if err != nil {
			return nil, asRPCError(err)
		}
		seqs.Items = append(seqs.Items, int64(seq))
	}
	return amqp.Response(200, "OK", wire.Map{{Key: "sequence-numbers", Value: seqs}}), nil
}

// cancelScheduled cancels scheduled messages by sequence number.
func (a *amqpHandler) cancelScheduled(ctx context.Context, e amqpEntity, body wire.Map) (*wire.Message, error) {
	v, _ := body.Get("sequence-numbers")
	items, _ := wire.Items(v)
	if len(items) == 0 {
		return nil, rpcErr(400, "com.microsoft:argument-error", "The request has no 'sequence-numbers' (an array of longs).")
	}
	var targets []target
	if e.queue != nil {
		targets = []target{e.target()}
	} else {
		for _, s := range e.topic.order {
			targets = append(targets, subscriptionTarget(e.ns.name, e.topic.name, s.name, s.settings))
		}
	}
	for _, it := range items {
		seq, ok := wire.AsInt64(it)
		if !ok || seq <= 0 {
			return nil, rpcErr(400, "com.microsoft:argument-error", "The sequence number %v is not a positive long.", it)
		}
		err := a.h.broker.cancelScheduled(ctx, e.ns.name, uint64(seq), targets)
		if errors.Is(err, errNotScheduled) {
			return nil, rpcErr(404, "com.microsoft:message-not-found", "No message scheduled on '%s' has the sequence number %d (it may have been enqueued or cancelled already).", e.path(), seq)
		}
		if err != nil {
			return nil, err
		}
	}
	return amqp.Response(200, "OK", wire.Map{}), nil
}
