package eventhubs

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehamqp"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// ActionReceive is the RBAC data action of a receive.
const ActionReceive = "Microsoft.EventHub/namespaces/messages/receive/action"

// AMQP returns the AMQP handler of the embedded namespaces (the same
// store, keys, roles and network rules as REST).
func (h *Handler) AMQP() *ehamqp.Handler { return ehamqp.New(amqpBackend{h}, h.cfg.Log) }

// amqpBackend is ehamqp.Backend over the embedded namespaces.
type amqpBackend struct{ h *Handler }

type nsKey struct{}

func (b amqpBackend) namespace(ctx context.Context, c *amqp.Conn) (*ehresource.NamespaceView, error) {
	name := NamespaceFromHost(c.Host(), b.h.cfg.DNSSuffix)
	ns, err := b.h.dir.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("eventhubs: load namespace %s: %w", name, err)
	}
	if ns == nil {
		return nil, wire.Errorf("amqp:not-found", "The Event Hubs namespace '%s' does not exist.", name)
	}
	return ns, nil
}

// Open implements ehamqp.Backend.
func (b amqpBackend) Open(ctx context.Context, c *amqp.Conn) error {
	_, err := b.namespace(ctx, c)
	return err
}

// PutToken implements ehamqp.Backend: a SAS token signed with a namespace
// or event hub rule's key, or a bearer token for https://eventhubs.azure.net.
func (b amqpBackend) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	ns, err := b.namespace(ctx, c)
	if err != nil {
		return amqp.Claim{}, &amqp.RPCError{Status: 404, Description: err.Error()}
	}
	aud := amqp.NormalizeAudience(t.Audience)
	host, path, _ := strings.Cut(aud, "/")
	if host != c.Host() {
		return amqp.Claim{}, &amqp.RPCError{Status: 401, Condition: "amqp:unauthorized-access",
			Description: fmt.Sprintf("The token is put for '%s', which is not on this namespace's host '%s'.", t.Audience, c.Host())}
	}
	entity, _, _ := strings.Cut(path, "/")
	if strings.HasPrefix(t.Token, "SharedAccessSignature ") {
		return b.sasClaim(ns, c.Host(), entity, aud, t.Token)
	}
	return b.bearerClaim(ctx, ns, aud, t.Token)
}

func (b amqpBackend) sasClaim(ns *ehresource.NamespaceView, host, entity, aud, token string) (amqp.Claim, error) {
	deny := func(format string, args ...any) (amqp.Claim, error) {
		return amqp.Claim{}, &amqp.RPCError{Status: 401, Condition: "amqp:unauthorized-access", Description: fmt.Sprintf(format, args...)}
	}
	if ns.DisableLocalAuth {
		return deny("Shared access signature (SAS) authorization is disabled for namespace '%s' (disableLocalAuth is true); use a Microsoft Entra ID token.", ns.Name)
	}
	tok, err := sas.Parse(token)
	if err != nil {
		return deny("The token is malformed: %v.", err)
	}
	if tok.Expired(b.h.now(), sasSkew) {
		return deny("The token expired at %s; sign a new one.", tok.Expiry.UTC().Format(time.RFC3339))
	}
	t := target{ns: ns, entity: entity, host: host, resource: "sb://" + host + "/" + entity}
	if eh, ok := ns.EventHub(entity); ok {
		t.eh = eh
	}
	rule, where, ok := findRule(t, tok.KeyName)
	if !ok {
		return deny("The token's key name '%s' is not an authorization rule of namespace '%s' or of event hub '%s'.", tok.KeyName, ns.Name, entity)
	}
	if !tok.VerifyRawKey(rule.PrimaryKey) && !tok.VerifyRawKey(rule.SecondaryKey) {
		return deny("The token has an invalid signature: sign it with the primary or secondary key of %s rule '%s'.", where, rule.Name)
	}
	// sr is a scope: the audience must be it or below it.
	if sr := amqp.NormalizeAudience(tok.Resource); sr != aud && !strings.HasPrefix(aud, sr+"/") {
		return deny("The token's resource (sr) '%s' does not cover '%s'.", tok.Resource, aud)
	}
	scope := ""
	if where == "event hub" {
		scope = entity
	}
	// The claim lasts as long as the token is accepted: its expiry plus the
	// clock skew tolerated.
	return amqp.Claim{Audience: aud, Expires: tok.Expiry.Add(sasSkew), Principal: sasGrant{b: b, rule: rule, scope: scope}}, nil
}

func (b amqpBackend) bearerClaim(ctx context.Context, ns *ehresource.NamespaceView, aud, token string) (amqp.Claim, error) {
	if b.h.cfg.Access == nil {
		return amqp.Claim{}, &amqp.RPCError{Status: 401, Description: "Bearer tokens are not accepted here: the identity plane is not configured."}
	}
	caller, err := b.h.cfg.Access.Authenticate(ctx, token, identity.ServiceEventHubs)
	if d, ok := access.IsDenial(err); ok {
		return amqp.Claim{}, &amqp.RPCError{Status: 401, Condition: "amqp:unauthorized-access",
			Description: strings.TrimSuffix(d.Reason, ".") + ". Event Hubs accepts tokens for the audience https://eventhubs.azure.net/."}
	}
	if err != nil {
		return amqp.Claim{}, fmt.Errorf("eventhubs: authenticate: %w", err)
	}
	return amqp.Claim{Audience: aud, Expires: jwtExpiry(token), Principal: rbacGrant{b: b, caller: caller}}, nil
}

// AuthenticatePlain implements ehamqp.PlainBackend: SASL PLAIN with a
// namespace rule's name and key (or a SAS token as the password) grants
// the rule's rights on the whole namespace for the connection's life.
func (b amqpBackend) AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error) {
	ns, err := b.namespace(ctx, c)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(password, "SharedAccessSignature ") {
		cl, err := b.sasClaim(ns, c.Host(), "", c.Host(), password)
		if err != nil {
			return nil, err
		}
		return []amqp.Claim{cl}, nil
	}
	if ns.DisableLocalAuth {
		return nil, fmt.Errorf("eventhubs: SAS is disabled for namespace %s", ns.Name)
	}
	for _, r := range ns.Rules {
		if strings.EqualFold(r.Name, user) && (keyEqual(password, r.PrimaryKey) || keyEqual(password, r.SecondaryKey)) {
			return []amqp.Claim{{Audience: c.Host(), Principal: sasGrant{b: b, rule: r}}}, nil
		}
	}
	return nil, fmt.Errorf("eventhubs: SASL PLAIN: no rule %q with that key on namespace %s", user, ns.Name)
}

func keyEqual(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// jwtExpiry reads exp from a token the identity plane has just validated.
func jwtExpiry(token string) time.Time {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}
	}
	return claims.ExpiresAt.Time
}

// sasGrant is a claim from a SAS rule: its rights, on the namespace or on
// one event hub.
type sasGrant struct {
	b     amqpBackend
	rule  ehresource.Rule
	scope string
}

func (g sasGrant) Allow(ctx context.Context, c *amqp.Conn, eventHub, right string) error {
	if g.scope != "" && !strings.EqualFold(g.scope, eventHub) {
		return wire.Errorf("amqp:unauthorized-access", "The rule '%s' belongs to event hub '%s', not '%s'.", g.rule.Name, g.scope, eventHub)
	}
	if !g.rule.Grants(right) {
		return wire.Errorf("amqp:unauthorized-access", "Unauthorized access. '%s' claim(s) are required to perform this operation. The rule '%s' grants %s.",
			right, g.rule.Name, strings.Join(g.rule.Rights, ", "))
	}
	return g.b.admit(ctx, c, nil)
}

// rbacGrant is a claim from a bearer token: rights come from roles,
// evaluated at every attach.
type rbacGrant struct {
	b      amqpBackend
	caller access.Caller
}

func (g rbacGrant) Allow(ctx context.Context, c *amqp.Conn, eventHub, right string) error {
	ns, err := g.b.namespace(ctx, c)
	if err != nil {
		return err
	}
	scope := ns.ID + "/eventhubs/" + eventHub
	if eh, ok := ns.EventHub(eventHub); ok {
		scope = eh.ID
	}
	action, role := ActionSend, "Azure Event Hubs Data Sender"
	if right != ehamqp.RightSend {
		action, role = ActionReceive, "Azure Event Hubs Data Receiver"
	}
	if err := g.b.h.cfg.Access.Authorize(g.caller, action, true, scope); err != nil {
		if _, ok := access.IsDenial(err); ok {
			return wire.Errorf("amqp:unauthorized-access", "Unauthorized access. '%s' claim(s) are required to perform this operation. Principal %s has no role granting %s at %s or above; assign '%s'.",
				right, g.caller.PrincipalID, action, scope, role)
		}
		return err
	}
	return g.b.admit(ctx, c, &g.caller)
}

func (b amqpBackend) admit(ctx context.Context, c *amqp.Conn, caller *access.Caller) error {
	ns, err := b.namespace(ctx, c)
	if err != nil {
		return err
	}
	err = b.h.admit(target{ns: ns}, c.Info().RemoteAddr, caller)
	var e *Error
	if errors.As(err, &e) {
		return wire.Errorf("amqp:unauthorized-access", "%s", e.Detail)
	}
	return err
}

// EventHub implements ehamqp.Backend.
func (b amqpBackend) EventHub(ctx context.Context, c *amqp.Conn, name string) (ehamqp.EventHub, error) {
	ns, err := b.namespace(ctx, c)
	if err != nil {
		return nil, err
	}
	eh, ok := ns.EventHub(name)
	if !ok {
		return nil, wire.Errorf("amqp:not-found", "The messaging entity 'sb://%s/%s' could not be found.", c.Host(), name)
	}
	return embeddedHub{h: b.h, ns: ns, eh: eh}, nil
}

// embeddedHub is one embedded event hub.
type embeddedHub struct {
	h  *Handler
	ns *ehresource.NamespaceView
	eh *ehresource.EventHubView
}

func (e embeddedHub) Name() string                   { return e.eh.Name }
func (e embeddedHub) Partitions() int                { return e.eh.PartitionCount }
func (e embeddedHub) CreatedAt() time.Time           { return time.Unix(0, 0).UTC() }
func (e embeddedHub) MaxMessageSize() uint64         { return uint64(e.ns.MaxEventBytes()) }
func (e embeddedHub) HasConsumerGroup(n string) bool { return e.eh.ConsumerGroups[strings.ToLower(n)] }

func (e embeddedHub) stream(ctx context.Context, p int) (jetstream.Stream, error) {
	s := e.h.cfg.Streams
	return s.js.Stream(ctx, s.bus.Stream(streamName(e.ns.Name, e.eh.Name, p)))
}

// Info implements ehamqp.EventHub from the partition stream's state.
func (e embeddedHub) Info(ctx context.Context, p int) (ehamqp.PartitionInfo, error) {
	info := ehamqp.PartitionInfo{LastSequenceNumber: -1, LastOffset: "-1", Empty: true}
	st, err := e.stream(ctx, p)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return info, nil
	}
	if err != nil {
		return info, err
	}
	si, err := st.Info(ctx)
	if err != nil {
		return info, err
	}
	state := si.State
	info.BeginSequenceNumber = int64(state.FirstSeq) - 1
	info.LastEnqueued = state.LastTime.UTC()
	if state.Msgs > 0 {
		info.LastSequenceNumber = int64(state.LastSeq) - 1
		info.LastOffset = fmt.Sprint(info.LastSequenceNumber)
		info.Empty = false
		// The enqueued time receivers saw is the one stamped at send, not
		// the stream's own timestamp.
		if last, err := st.GetMsg(ctx, state.LastSeq); err == nil {
			info.LastEnqueued = decode(last, p).EnqueuedTime
		}
	} else {
		info.BeginSequenceNumber = int64(state.LastSeq)
	}
	return info, nil
}

// Read implements ehamqp.EventHub with an ordered consumer on the
// partition's stream: nothing is acknowledged or consumed.
func (e embeddedHub) Read(ctx context.Context, p int, pos ehamqp.Position, fn func(ehamqp.Event) error) error {
	cfg := orderedConfig(pos, 1)
	s := e.h.cfg.Streams
	c, err := s.js.OrderedConsumer(ctx, s.bus.Stream(streamName(e.ns.Name, e.eh.Name, p)), cfg)
	if err != nil {
		return fmt.Errorf("eventhubs: read %s/%d: %w", e.eh.Name, p, err)
	}
	return bus.ReadOrdered(ctx, c, func(msg jetstream.Msg) error {
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		ev := decodeParts(msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp, p)
		return fn(toWireEvent(ev))
	})
}

// orderedConfig positions an ordered consumer. Sequence numbers are stream
// sequences minus base (1 for a stream per partition).
func orderedConfig(pos ehamqp.Position, base int64) jetstream.OrderedConsumerConfig {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch pos.Kind {
	case ehamqp.FromLatest:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case ehamqp.FromSequence:
		start := pos.Sequence + base
		if !pos.Inclusive {
			start++
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, uint64(max(start, 1))
	case ehamqp.FromTime:
		t := pos.Time
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return cfg
}

// toWireEvent converts a stored event for AMQP receivers.
func toWireEvent(ev Event) ehamqp.Event {
	out := ehamqp.Event{Body: ev.Body, SequenceNumber: ev.SequenceNumber, EnqueuedTime: ev.EnqueuedTime, PartitionKey: ev.PartitionKey}
	if ev.MessageID != "" || ev.CorrelationID != "" || ev.ContentType != "" || ev.Subject != "" {
		out.Properties = &wire.Properties{Subject: ev.Subject, ContentType: wire.Symbol(ev.ContentType)}
		if ev.MessageID != "" {
			out.Properties.MessageID = ev.MessageID
		}
		if ev.CorrelationID != "" {
			out.Properties.CorrelationID = ev.CorrelationID
		}
	}
	if ev.Publisher != "" {
		out.Annotations = wire.Map{{Key: wire.Symbol(PropPublisher), Value: ev.Publisher}}
	}
	if len(ev.Properties) > 0 {
		out.ApplicationProperties = make(wire.Map, 0, len(ev.Properties))
		for k, v := range ev.Properties {
			out.ApplicationProperties = append(out.ApplicationProperties, wire.KV{Key: k, Value: amqpValue(v)})
		}
	}
	return out
}

// amqpValue turns a stored (JSON) property value into an AMQP value:
// integral numbers become longs, other numbers doubles, objects JSON text.
func amqpValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Publish implements ehamqp.EventHub through the REST send path.
func (e embeddedHub) Publish(ctx context.Context, partition int, msgs []*wire.Message) error {
	req := SendRequest{Events: make([]EventData, 0, len(msgs))}
	if partition >= 0 {
		req.PartitionID = fmt.Sprint(partition)
	}
	for _, m := range msgs {
		req.Events = append(req.Events, eventFromWire(m))
	}
	err := e.h.Send(ctx, e.ns.Name, e.eh.Name, req)
	var he *Error
	if errors.As(err, &he) {
		cond := wire.Symbol("amqp:internal-error")
		switch he.Status {
		case http.StatusNotFound:
			cond = "amqp:not-found"
		case http.StatusBadRequest:
			cond = "com.microsoft:argument-error"
		case http.StatusForbidden:
			cond = "amqp:not-allowed"
		case http.StatusRequestEntityTooLarge:
			cond = "amqp:link:message-size-exceeded"
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			cond = "com.microsoft:server-busy"
		}
		return &wire.Error{Condition: cond, Description: he.Detail}
	}
	return err
}

// eventFromWire converts an AMQP message to an event to store.
func eventFromWire(m *wire.Message) EventData {
	ev := EventData{Body: m.Body(), PartitionKey: m.Annotations.String("x-opt-partition-key")}
	if p := m.Properties; p != nil {
		ev.MessageID = wire.MessageIDString(p.MessageID)
		ev.CorrelationID = wire.MessageIDString(p.CorrelationID)
		ev.ContentType = string(p.ContentType)
		ev.Subject = p.Subject
	}
	if len(m.ApplicationProperties) > 0 {
		ev.Properties = make(map[string]any, len(m.ApplicationProperties))
		for _, kv := range m.ApplicationProperties {
			k, ok := kv.Key.(string)
			if !ok {
				if s, isSym := kv.Key.(wire.Symbol); isSym {
					k = string(s)
				} else {
					continue
				}
			}
			ev.Properties[k] = jsonValue(kv.Value)
		}
	}
	return ev
}

// jsonValue maps an AMQP property value to what the store keeps (JSON).
func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case wire.UUID:
		return x.String()
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case wire.Symbol:
		return string(x)
	case wire.Char:
		return string(rune(x))
	}
	if n, ok := wire.AsInt64(v); ok {
		return n
	}
	return v
}
