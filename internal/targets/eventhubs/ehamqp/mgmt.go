package ehamqp

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// serveManagement answers $management READ requests for an event hub or a
// partition, in the types azeventhubs and @azure/event-hubs assert:
// partition_ids an array of string, created_at and last_enqueued_time_utc
// timestamps, sequence numbers longs, last_enqueued_offset a string.
func (h *Handler) serveManagement(ctx context.Context, c *amqp.Conn, req *wire.Message) *wire.Message {
	ap := req.ApplicationProperties
	if op := ap.String("operation"); op != "READ" {
		return amqp.ErrorResponse(&amqp.RPCError{Status: 501, Description: "Only the READ operation is served on $management; got '" + op + "'."})
	}
	name := ap.String("name")
	eh, err := h.b.EventHub(ctx, c, name)
	if err != nil {
		return amqp.ErrorResponse(rpcError(err, 404))
	}
	if err := h.authorizeManagement(ctx, c, eh.Name(), ap.String("security_token")); err != nil {
		return amqp.ErrorResponse(rpcError(err, 401))
	}
	switch typ := ap.String("type"); typ {
	case "com.microsoft:eventhub":
		ids := make([]string, eh.Partitions())
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		return amqp.Response(200, "OK", wire.Map{
			{Key: "name", Value: eh.Name()},
			{Key: "type", Value: typ},
			{Key: "created_at", Value: eh.CreatedAt()},
			{Key: "partition_count", Value: int32(eh.Partitions())},
			{Key: "partition_ids", Value: wire.StringArray(ids...)},
			{Key: "georeplication_factor", Value: int32(0)},
		})
	case "com.microsoft:partition":
		pid := ap.String("partition")
		p, err := strconv.Atoi(pid)
		if err != nil || p < 0 || p >= eh.Partitions() {
			return amqp.ErrorResponse(&amqp.RPCError{Status: 400, Condition: "com.microsoft:argument-out-of-range",
				Description: "The specified partition '" + pid + "' is invalid. It should be between 0 and " + strconv.Itoa(eh.Partitions()-1) + "."})
		}
		info, err := eh.Info(ctx, p)
		if err != nil {
			return amqp.ErrorResponse(&amqp.RPCError{Status: 500, Description: "Reading partition " + pid + " failed: " + err.Error()})
		}
		return amqp.Response(200, "OK", wire.Map{
			{Key: "name", Value: eh.Name()},
			{Key: "type", Value: typ},
			{Key: "partition", Value: pid},
			{Key: "begin_sequence_number", Value: info.BeginSequenceNumber},
			{Key: "last_enqueued_sequence_number", Value: info.LastSequenceNumber},
			{Key: "last_enqueued_offset", Value: info.LastOffset},
			{Key: "last_enqueued_time_utc", Value: info.LastEnqueued},
			{Key: "is_partition_empty", Value: info.Empty},
		})
	default:
		return amqp.ErrorResponse(&amqp.RPCError{Status: 400, Description: "Unknown READ type '" + typ + "'; use com.microsoft:eventhub or com.microsoft:partition."})
	}
}

// authorizeManagement accepts a claim covering the event hub with any
// right, or the request's own security_token.
func (h *Handler) authorizeManagement(ctx context.Context, c *amqp.Conn, eventHub, token string) error {
	aud := c.Host() + "/" + eventHub + "/$management"
	cl, ok := c.ClaimFor(aud)
	if !ok && token != "" {
		var err error
		cl, err = h.b.PutToken(ctx, c, amqp.TokenRequest{Type: tokenType(token), Audience: c.Host() + "/" + eventHub, Token: strings.TrimPrefix(token, "Bearer ")})
		if err != nil {
			return err
		}
		ok = true
	}
	if !ok {
		return &amqp.RPCError{Status: 401, Condition: "amqp:unauthorized-access",
			Description: "Unauthorized access: no token covers '" + aud + "'. Put a token for the event hub on $cbs or send security_token."}
	}
	g, isGrant := cl.Principal.(Grant)
	if !isGrant {
		return &amqp.RPCError{Status: 401, Description: "Unauthorized access: the claim grants nothing."}
	}
	var last error
	for _, r := range []string{RightListen, RightSend, RightManage} {
		if last = g.Allow(ctx, c, eventHub, r); last == nil {
			return nil
		}
	}
	return last
}

func tokenType(tok string) string {
	if strings.HasPrefix(tok, "SharedAccessSignature ") {
		return "servicebus.windows.net:sastoken"
	}
	return "jwt"
}

// rpcError maps a backend refusal to a status.
func rpcError(err error, status int32) *amqp.RPCError {
	var re *amqp.RPCError
	if errors.As(err, &re) {
		return re
	}
	var we *wire.Error
	if errors.As(err, &we) {
		switch we.Condition {
		case "amqp:not-found":
			status = 404
		case "amqp:unauthorized-access":
			status = 401
		}
		return &amqp.RPCError{Status: status, Description: we.Description, Condition: we.Condition}
	}
	return &amqp.RPCError{Status: 500, Description: err.Error()}
}
