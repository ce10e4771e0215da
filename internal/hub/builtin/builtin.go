package builtin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehamqp"
)

// Access authenticates bearer tokens and checks roles (*access.Checker).
type Access interface {
	Authenticate(ctx context.Context, token string, service identity.Service) (access.Caller, error)
	Authorize(caller access.Caller, action string, isDataAction bool, scope string) error
}

// Config holds the backend's dependencies.
type Config struct {
	Hubs      *hub.Directory
	Telemetry *telemetry.Streams
	Access    Access
	DNSSuffix string
	// ConsumerGroupExists reports whether the hub has the consumer group
	// ($Default always exists).
	ConsumerGroupExists func(ctx context.Context, hubID, name string) (bool, error)
	Now                 func() time.Time
}

// actionReceive is the data action a bearer token's principal needs on
// the hub (e.g. through "Azure Event Hubs Data Receiver" assigned on it).
const actionReceive = "Microsoft.EventHub/namespaces/messages/receive/action"

// Backend implements ehamqp.Backend.
type Backend struct{ cfg Config }

// New builds the backend.
func New(cfg Config) *Backend {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backend{cfg: cfg}
}

var _ ehamqp.Backend = (*Backend)(nil)

func (b *Backend) hub(ctx context.Context, c *amqp.Conn) (hub.Hub, error) {
	name := telemetry.HubFromBuiltInHost(c.Host(), b.cfg.DNSSuffix)
	h, ok, err := b.cfg.Hubs.Get(ctx, name)
	if err != nil {
		return hub.Hub{}, fmt.Errorf("builtin: load hub %s: %w", name, err)
	}
	if !ok || name == "" {
		return hub.Hub{}, wire.Errorf("amqp:not-found", "No IoT hub's built-in endpoint is served at '%s'.", c.Host())
	}
	return h, nil
}

// Open implements ehamqp.Backend.
func (b *Backend) Open(ctx context.Context, c *amqp.Conn) error {
	_, err := b.hub(ctx, c)
	return err
}

// PutToken implements ehamqp.Backend: a SAS token signed with a shared
// access policy that has ServiceConnect (the key's string bytes, as Event
// Hubs clients sign, or its decoded bytes, as IoT SDKs sign), or a bearer
// token for https://eventhubs.azure.net.
func (b *Backend) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	h, err := b.hub(ctx, c)
	if err != nil {
		return amqp.Claim{}, &amqp.RPCError{Status: 404, Description: err.Error()}
	}
	deny := func(format string, args ...any) (amqp.Claim, error) {
		return amqp.Claim{}, &amqp.RPCError{Status: 401, Condition: "amqp:unauthorized-access", Description: fmt.Sprintf(format, args...)}
	}
	aud := amqp.NormalizeAudience(t.Audience)
	if host, _, _ := strings.Cut(aud, "/"); host != c.Host() {
		return deny("The token is put for '%s', which is not this endpoint's host '%s'.", t.Audience, c.Host())
	}
	if !strings.HasPrefix(t.Token, "SharedAccessSignature ") {
		if b.cfg.Access == nil {
			return deny("Bearer tokens are not accepted here.")
		}
		caller, err := b.cfg.Access.Authenticate(ctx, t.Token, identity.ServiceEventHubs)
		if d, ok := access.IsDenial(err); ok {
			return deny("%s. The built-in endpoint accepts tokens for https://eventhubs.azure.net/.", strings.TrimSuffix(d.Reason, "."))
		}
		if err != nil {
			return amqp.Claim{}, err
		}
		return amqp.Claim{Audience: aud, Expires: jwtExpiry(t.Token), Principal: rbacGrant{b: b, caller: caller}}, nil
	}
	if h.DisableLocalAuth {
		return deny("Shared access policies are disabled for hub '%s' (disableLocalAuth is true); use a Microsoft Entra ID token.", h.Name)
	}
	tok, err := sas.Parse(t.Token)
	if err != nil {
		return deny("The token is malformed: %v.", err)
	}
	if tok.Expired(b.cfg.Now(), 5*time.Minute) {
		return deny("The token expired at %s; sign a new one.", tok.Expiry.UTC().Format(time.RFC3339))
	}
	p, ok := h.Policy(tok.KeyName)
	if !ok {
		return deny("The token's key name '%s' is not a shared access policy of hub '%s'.", tok.KeyName, h.Name)
	}
	if !tok.VerifyRawKey(p.PrimaryKey) && !tok.VerifyRawKey(p.SecondaryKey) && !tok.Verify(p.PrimaryKey) && !tok.Verify(p.SecondaryKey) {
		return deny("The token has an invalid signature: sign it with the primary or secondary key of policy '%s'.", p.KeyName)
	}
	if sr := amqp.NormalizeAudience(tok.Resource); sr != aud && !strings.HasPrefix(aud, sr+"/") {
		return deny("The token's resource (sr) '%s' does not cover '%s'.", tok.Resource, aud)
	}
	if !p.Has("ServiceConnect") {
		return deny("The policy '%s' lacks ServiceConnect, which reading the built-in endpoint needs (it grants %s).", p.KeyName, p.Rights)
	}
	// The claim lasts as long as the token is accepted: its expiry plus the
	// clock skew tolerated.
	return amqp.Claim{Audience: aud, Expires: tok.Expiry.Add(5 * time.Minute), Principal: policyGrant{}}, nil
}

func jwtExpiry(token string) time.Time {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}
	}
	return claims.ExpiresAt.Time
}

// policyGrant is a ServiceConnect policy's claim: it reads.
type policyGrant struct{}

func (policyGrant) Allow(_ context.Context, _ *amqp.Conn, _ string, right string) error {
	if right == ehamqp.RightSend {
		return readOnly()
	}
	return nil
}

// rbacGrant is a bearer token's claim, checked against roles on the hub.
type rbacGrant struct {
	b      *Backend
	caller access.Caller
}

func (g rbacGrant) Allow(ctx context.Context, c *amqp.Conn, _ string, right string) error {
	if right == ehamqp.RightSend {
		return readOnly()
	}
	h, err := g.b.hub(ctx, c)
	if err != nil {
		return err
	}
	if err := g.b.cfg.Access.Authorize(g.caller, actionReceive, true, h.ResourceID); err != nil {
		if _, ok := access.IsDenial(err); ok {
			return wire.Errorf("amqp:unauthorized-access", "Unauthorized access. 'Listen' claim(s) are required. Principal %s has no role granting %s at %s or above; assign 'Azure Event Hubs Data Receiver' on the hub.",
				g.caller.PrincipalID, actionReceive, h.ResourceID)
		}
		return err
	}
	return nil
}

func readOnly() error {
	return wire.Errorf("amqp:not-allowed", "The built-in endpoint is read-only: devices send telemetry to the hub, which stores it here.")
}

// EventHub implements ehamqp.Backend: the one event hub, named after the
// hub.
func (b *Backend) EventHub(ctx context.Context, c *amqp.Conn, name string) (ehamqp.EventHub, error) {
	h, err := b.hub(ctx, c)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(name, h.Name) {
		return nil, wire.Errorf("amqp:not-found", "The messaging entity 'sb://%s/%s' could not be found; this endpoint's event hub is '%s'.", c.Host(), name, h.Name)
	}
	return endpoint{b: b, h: h}, nil
}

// endpoint is one hub's built-in endpoint.
type endpoint struct {
	b *Backend
	h hub.Hub
}

func (e endpoint) Name() string           { return e.h.Name }
func (e endpoint) Partitions() int        { return e.h.PartitionCount }
func (e endpoint) CreatedAt() time.Time   { return time.Unix(0, 0).UTC() }
func (e endpoint) MaxMessageSize() uint64 { return 256 << 10 }

func (e endpoint) HasConsumerGroup(name string) bool {
	if strings.EqualFold(name, "$Default") {
		return true
	}
	if e.b.cfg.ConsumerGroupExists == nil {
		return false
	}
	ok, err := e.b.cfg.ConsumerGroupExists(context.Background(), e.h.ResourceID, name)
	return err == nil && ok
}

func (e endpoint) Info(ctx context.Context, p int) (ehamqp.PartitionInfo, error) {
	st, err := e.b.cfg.Telemetry.PartitionState(ctx, e.h.Name, p)
	if err != nil {
		return ehamqp.PartitionInfo{}, err
	}
	if st.Empty {
		return ehamqp.PartitionInfo{BeginSequenceNumber: int64(st.First) - 1, LastSequenceNumber: -1, LastOffset: "-1", Empty: true}, nil
	}
	last := int64(st.Last) - 1
	return ehamqp.PartitionInfo{BeginSequenceNumber: int64(st.First) - 1, LastSequenceNumber: last,
		LastOffset: strconv.FormatInt(last, 10), LastEnqueued: st.LastTime}, nil
}

func (e endpoint) Read(ctx context.Context, p int, pos ehamqp.Position, fn func(ehamqp.Event) error) error {
	start := telemetry.Start{Policy: jetstream.DeliverAllPolicy}
	switch pos.Kind {
	case ehamqp.FromLatest:
		start.Policy = jetstream.DeliverNewPolicy
	case ehamqp.FromSequence:
		seq := pos.Sequence + 1
		if !pos.Inclusive {
			seq++
		}
		start.Policy, start.Seq = jetstream.DeliverByStartSequencePolicy, uint64(max(seq, 1))
	case ehamqp.FromTime:
		start.Policy, start.Time = jetstream.DeliverByStartTimePolicy, pos.Time
	}
	return e.b.cfg.Telemetry.ReadPartition(ctx, e.h.Name, p, start, func(m telemetry.Message) error {
		return fn(toEvent(m))
	})
}

func (e endpoint) Publish(context.Context, int, []*wire.Message) error { return readOnly() }

// toEvent renders a device message as IoT Hub delivers it on the built-in
// endpoint: message-id, correlation-id, user-id, content type and encoding
// as AMQP properties; the other system properties (iothub-connection-
// device-id, iothub-enqueuedtime, …) as message annotations; application
// properties as they were sent.
func toEvent(m telemetry.Message) ehamqp.Event {
	ev := ehamqp.Event{Body: m.Payload, SequenceNumber: int64(m.Sequence) - 1, EnqueuedTime: m.Enqueued.UTC()}
	var props wire.Properties
	hasProps := false
	for k, v := range m.System {
		switch k {
		case telemetry.PropMessageID:
			props.MessageID, hasProps = v, true
		case telemetry.PropCorrelationID:
			props.CorrelationID, hasProps = v, true
		case telemetry.PropUserID:
			props.UserID, hasProps = []byte(v), true
		case telemetry.PropContentType:
			props.ContentType, hasProps = wire.Symbol(v), true
		case telemetry.PropContentEncoding:
			props.ContentEncoding, hasProps = wire.Symbol(v), true
		case telemetry.PropEnqueuedTime:
			ev.Annotations = append(ev.Annotations, wire.KV{Key: wire.Symbol(k), Value: m.Enqueued.UTC()})
		default:
			ev.Annotations = append(ev.Annotations, wire.KV{Key: wire.Symbol(k), Value: v})
		}
	}
	if hasProps {
		ev.Properties = &props
	}
	if len(m.App) > 0 {
		ev.ApplicationProperties = make(wire.Map, 0, len(m.App))
		for k, v := range m.App {
			ev.ApplicationProperties = append(ev.ApplicationProperties, wire.KV{Key: k, Value: v})
		}
	}
	return ev
}
