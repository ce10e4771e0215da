package mqtt

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"time"
)

// ConnectInfo is what a device presented in CONNECT and in the TLS handshake. The server has
// already checked that Username names the same device (and module) as ClientID; the
// Authenticator checks the credentials themselves.
type ConnectInfo struct {
	ClientID string // "{deviceId}" or "{deviceId}/{moduleId}"
	Username string // "{host}/{clientId}/?api-version=…&DeviceClientType=…", verbatim
	Password string // a SAS token ("SharedAccessSignature sr=…&sig=…&se=…"); empty for X.509

	// PeerCertificates is the client certificate chain from the TLS handshake, leaf first.
	// The caller's tls.Config decides whether one is requested (tls.RequestClientCert);
	// verifying it against registered thumbprints or CAs is the Authenticator's job.
	PeerCertificates []*x509.Certificate
	ServerName       string // TLS SNI; empty when the device connected by IP address
	RemoteAddr       net.Addr

	// Parsed from Username and ClientID.
	Host     string     // the hub host name the device addressed ("myhub.azure-devices.net")
	DeviceID string     // from ClientID
	ModuleID string     // from ClientID; empty for a device connection
	Params   url.Values // the username's query: api-version, DeviceClientType, model-id
}

// AuthMethod names how a connection proved its identity, with IoT Hub's authenticationType values.
type AuthMethod string

const (
	AuthSAS            AuthMethod = "sas"
	AuthX509SelfSigned AuthMethod = "selfSigned"
	AuthX509CA         AuthMethod = "certificateAuthority"
)

// Identity is who a connection authenticated as.
type Identity struct {
	Hub        string // names the hub as the hub runtime does; Deliver's DeviceKey must match
	DeviceID   string
	ModuleID   string // empty for a device connection
	AuthMethod AuthMethod
	// ExpiresAt closes the connection when it passes (the SAS token's se). Zero: no expiry.
	ExpiresAt time.Time
}

// Key is the device key the server tracks the connection and its persistent session under.
func (id Identity) Key() DeviceKey {
	return DeviceKey{Hub: id.Hub, DeviceID: id.DeviceID, ModuleID: id.ModuleID}
}

// DeviceKey names one device (or module) identity on one hub.
type DeviceKey struct {
	Hub      string
	DeviceID string
	ModuleID string
}

// Authenticator decides whether a CONNECT is allowed and as whom. Its errors choose the CONNACK
// return code: ErrBadCredentials → 4, ErrNotAuthorized → 5, ErrServerUnavailable or any other
// error → 3. The returned identity must name the device and module of info.ClientID;
// otherwise the connection is refused with 5.
type Authenticator interface {
	Authenticate(ctx context.Context, info ConnectInfo) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, info ConnectInfo) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, info ConnectInfo) (Identity, error) {
	return f(ctx, info)
}

// Errors an Authenticator returns to choose the CONNACK return code.
var (
	ErrBadCredentials    = errors.New("mqtt: bad user name or password")
	ErrNotAuthorized     = errors.New("mqtt: not authorized")
	ErrServerUnavailable = errors.New("mqtt: server unavailable")
)

// Well-known system property names in a telemetry or C2D property bag. Every other name is an
// application property.
const (
	PropMessageID       = "$.mid"
	PropCorrelationID   = "$.cid"
	PropUserID          = "$.uid"
	PropTo              = "$.to"
	PropExpiry          = "$.exp"
	PropContentType     = "$.ct"
	PropContentEncoding = "$.ce"
	PropInterfaceID     = "$.ifid"
	PropSubject         = "$.sub"
	PropOutputName      = "$.on"

	// PropRetain is the application property IoT Hub adds to a PUBLISH with RETAIN set.
	PropRetain = "mqtt-retain"
	// PropMessageType is the application property IoT Hub adds to a Will message ("Will").
	PropMessageType = "iothub-MessageType"
)

// IsSystemProperty reports whether a property-bag name is a system property ("$."-prefixed).
func IsSystemProperty(name string) bool { return len(name) > 2 && name[0] == '$' && name[1] == '.' }

// Message is one device-to-cloud telemetry message.
type Message struct {
	Topic string
	// Properties holds the decoded property bag: system properties under their bag names
	// ($.mid, $.ct, …) and application properties under theirs. A name without "=" maps to "".
	Properties map[string]string
	// Payload is the message body. It is not reused by the server: a handler may keep it.
	Payload []byte
	QoS     byte
}

// TwinResponse answers a twin request. It is published on $iothub/twin/res/{Status}/?$rid=…,
// with &$version={Version} when Version is not zero.
type TwinResponse struct {
	Status  int
	Version int64
	Body    []byte // GET: {"desired":{…},"reported":{…}}; errors: {"errorCode":…,"message":…}
}

// TelemetryHandler takes device-to-cloud messages. For a QoS 1 PUBLISH the PUBACK is sent only
// after Telemetry returns nil, so the handler persists the message first; an error closes the
// connection without a PUBACK and the device sends the message again. Calls for one connection
// are sequential and in the order the device published, so a handler sees each device's
// messages in order.
type TelemetryHandler interface {
	Telemetry(ctx context.Context, id Identity, msg Message) error
}

// TelemetryStarter is an optional extension of TelemetryHandler. StartTelemetry begins storing a
// message and returns a wait for the outcome. A connection starts every telemetry PUBLISH it has
// already received (up to a batch) before waiting for the first, so one device's QoS 1 window
// shares the store's round trips; it still PUBACKs each message only after its own wait returned
// nil, in the order received (MQTT 3.1.1 §4.6). An error from either call closes the connection
// without acknowledging that message or any after it, as with Telemetry.
type TelemetryStarter interface {
	StartTelemetry(id Identity, msg Message) (wait func(ctx context.Context) error, err error)
}

// ConnectionObserver learns when a device connects and disconnects. For one device key the
// calls alternate: when a new connection takes over, Disconnected for the old one returns
// before Connected for the new one is called (unless the old one is stuck past the connect
// timeout).
type ConnectionObserver interface {
	Connected(ctx context.Context, id Identity)
	Disconnected(ctx context.Context, id Identity)
}

// TwinHandler serves the device side of twins.
type TwinHandler interface {
	// TwinGet answers $iothub/twin/GET/?$rid={rid}.
	TwinGet(ctx context.Context, id Identity, rid string) TwinResponse
	// TwinReported applies a reported-properties patch from
	// $iothub/twin/PATCH/properties/reported/?$rid={rid}; success is 204 with the new version.
	TwinReported(ctx context.Context, id Identity, rid string, patch []byte) TwinResponse
}

// MethodHandler takes a device's answer to a direct method request sent with Deliver.
type MethodHandler interface {
	MethodResponse(ctx context.Context, id Identity, rid string, status int, payload []byte)
}

// Handler is everything the hub runtime provides to the MQTT endpoint. Calls for one connection
// are never concurrent and come in the order the device sent the packets: Connected first,
// Disconnected last. Calls for different connections are concurrent.
type Handler interface {
	TelemetryHandler
	ConnectionObserver
	TwinHandler
	MethodHandler
}

// DeliveryKind says what Deliver sends.
type DeliveryKind int

const (
	// DeliverC2D sends a cloud-to-device message on devices/{id}/messages/devicebound/{bag}.
	DeliverC2D DeliveryKind = iota + 1
	// DeliverDesiredPatch sends a desired-properties patch on
	// $iothub/twin/PATCH/properties/desired/?$version={Version}.
	DeliverDesiredPatch
	// DeliverMethodRequest sends a direct method call on
	// $iothub/methods/POST/{MethodName}/?$rid={RequestID}.
	DeliverMethodRequest
)

// Delivery is one server-to-device message.
type Delivery struct {
	Kind    DeliveryKind
	Payload []byte

	// Properties (C2D) become the topic's property bag: system properties under their bag names
	// ($.mid, $.cid, $.to, $.exp, $.ct, $.ce), application properties under theirs.
	Properties map[string]string
	// Acked (C2D) is called exactly once if Deliver returned nil: with nil when the device
	// PUBACKs (or, when the device subscribed with QoS 0, once the message is queued for
	// writing), or with ErrConnectionClosed when the connection ends first. It is called from
	// a connection goroutine and must not block.
	Acked func(error)

	Version    int64  // DesiredPatch: the desired properties' new $version
	MethodName string // MethodRequest
	RequestID  string // MethodRequest: the $rid the device answers with
}

// Errors from Deliver.
var (
	// ErrNotConnected: no connection for that device key. The hub keeps C2D messages queued.
	ErrNotConnected = errors.New("mqtt: device not connected")
	// ErrNotSubscribed: the device is connected but has not subscribed to the delivery's topic
	// (IoT Hub treats a method call to such a device as "device not online").
	ErrNotSubscribed = errors.New("mqtt: device not subscribed to the topic")
	// ErrConnectionClosed: the connection ended before the delivery was written or acknowledged.
	ErrConnectionClosed = errors.New("mqtt: connection closed")
	// ErrInvalidDelivery: the delivery cannot be expressed as an IoT Hub MQTT message.
	ErrInvalidDelivery = errors.New("mqtt: invalid delivery")
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("mqtt: server closed")
