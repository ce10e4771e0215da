package hubamqp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
)

// iotHubScope is the audience the service SDK puts Entra tokens for.
const iotHubScope = "iothubs.azure.net"

// serviceClaim is the principal of a service token's claim.
type serviceClaim struct {
	caller serviceapi.ServiceCaller
	// credential is the token as put: a policy SAS with DeviceConnect also
	// authenticates devices (deviceauth decides).
	credential string
}

// deviceClaim is the principal of a device token's claim.
type deviceClaim struct {
	id deviceauth.Identity
}

func unauthorizedRPC(format string, args ...any) *amqp.RPCError {
	return &amqp.RPCError{Status: 401, Description: sprintf(format, args...), Condition: "amqp:unauthorized-access"}
}

// PutToken implements amqp.Handler: service tokens (the hub's host name,
// or the IoT Hub Entra scope) and device tokens ({host}/devices/{id}).
func (h *Handler) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	hb, err := h.currentHub(ctx, c)
	if err != nil {
		return amqp.Claim{}, err
	}
	host, deviceID, moduleID, ok := parseAudience(t.Audience)
	switch {
	case ok && deviceID == "" && (host == iotHubScope || (t.Type == "jwt" && h.namesHub(c, hb, host))):
		caller, err := h.cfg.Service.Authenticate(ctx, "Bearer "+t.Token, hb)
		if err != nil {
			return amqp.Claim{}, asRPCError(err)
		}
		return amqp.Claim{Audience: t.Audience, Expires: jwtExpiry(t.Token), Principal: serviceClaim{caller: caller}}, nil
	case !ok || !h.namesHub(c, hb, host):
		return amqp.Claim{}, unauthorizedRPC("The audience '%s' does not name hub %s: put a token for '%s' (service) or '%s/devices/{deviceId}' (device).",
			t.Audience, hb.Name, hb.HostName, hb.HostName)
	case deviceID == "":
		caller, err := h.cfg.Service.Authenticate(ctx, t.Token, hb, c.Host())
		if err != nil {
			return amqp.Claim{}, asRPCError(err)
		}
		return amqp.Claim{Audience: t.Audience, Expires: caller.Expires, Principal: serviceClaim{caller: caller, credential: t.Token}}, nil
	}
	id, err := h.cfg.Devices.SAS(ctx, c.Host(), deviceID, moduleID, t.Token)
	if err != nil {
		return amqp.Claim{}, asRPCError(err)
	}
	if id.Hub.Name != hb.Name {
		return amqp.Claim{}, unauthorizedRPC("The token is for hub %s; this connection is to hub %s.", id.Hub.Name, hb.Name)
	}
	return amqp.Claim{Audience: t.Audience, Expires: id.ExpiresAt, Principal: deviceClaim{id: id}}, nil
}

// namesHub reports whether an audience's host is the hub: its host name,
// or the name this connection reached it by (localhost, an IP address).
func (h *Handler) namesHub(c *amqp.Conn, hb hub.Hub, host string) bool {
	return strings.EqualFold(host, hb.HostName) || (c.Host() != "" && strings.EqualFold(host, c.Host()))
}

// parseAudience splits an audience — "{host}", "{host}/devices/{id}",
// "{host}/devices/{id}/modules/{m}", percent-encoded or not, with or
// without a scheme — keeping the ids' case.
func parseAudience(aud string) (host, deviceID, moduleID string, ok bool) {
	a := strings.TrimSpace(aud)
	if un, err := url.PathUnescape(a); err == nil {
		a = un
	}
	if _, rest, found := strings.Cut(a, "://"); found {
		a = rest
	}
	a = strings.TrimSuffix(strings.TrimSuffix(a, "/"), "/.default")
	parts := strings.Split(a, "/")
	host = strings.ToLower(parts[0])
	if h, _, found := strings.Cut(host, ":"); found && !strings.HasPrefix(host, "[") {
		host = h
	}
	switch {
	case len(parts) == 1:
		return host, "", "", host != ""
	case len(parts) == 3 && strings.EqualFold(parts[1], "devices") && parts[2] != "":
		return host, parts[2], "", true
	case len(parts) == 5 && strings.EqualFold(parts[1], "devices") && parts[2] != "" && strings.EqualFold(parts[3], "modules") && parts[4] != "":
		return host, parts[2], parts[4], true
	}
	return host, "", "", false
}

// asRPCError turns an authentication refusal into a 401 and anything else
// (the store failing) into a 500.
func asRPCError(err error) error {
	var re *registry.Error
	if errors.As(err, &re) && re.Status == 401 {
		return unauthorizedRPC("%s", re.Message)
	}
	var de *deviceauth.Error
	if errors.As(err, &de) {
		return unauthorizedRPC("%s", de.Reason)
	}
	return err
}

// jwtExpiry reads a validated JWT's exp (the claim lasts as long as the
// token); zero when it has none.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return time.Time{}
	}
	if n, err := c.Exp.Int64(); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	return time.Time{}
}

// authorizeService finds a live service claim allowing need and returns
// its audience (the link lives as long as that claim).
func (h *Handler) authorizeService(ctx context.Context, c *amqp.Conn, hb hub.Hub, need serviceapi.Access) (string, error) {
	var refusal error
	for _, cl := range c.Claims() {
		sc, ok := cl.Principal.(serviceClaim)
		if !ok {
			continue
		}
		err := h.cfg.Service.Authorize(sc.caller, hb, need)
		if err == nil {
			return cl.Audience, nil
		}
		refusal = err
	}
	var re *registry.Error
	if errors.As(refusal, &re) {
		return "", wire.Errorf("amqp:unauthorized-access", "%s", re.Message)
	}
	return "", wire.Errorf("amqp:unauthorized-access",
		"No service token was put on $cbs for hub %s: put a shared access signature of a policy with ServiceConnect for '%s', or a bearer token for 'https://iothubs.azure.net/.default'.",
		hb.Name, hb.HostName)
}

// authorizeDevice authenticates an attach to a device's (or module's)
// paths: a live device claim for exactly that identity, a policy claim
// with DeviceConnect, or the TLS client certificate. It returns the
// identity and the audience of the claim the link depends on ("" for a
// certificate).
func (h *Handler) authorizeDevice(ctx context.Context, c *amqp.Conn, hb hub.Hub, deviceID, moduleID string) (deviceauth.Identity, string, error) {
	var other *deviceauth.Identity
	for _, cl := range c.Claims() {
		switch p := cl.Principal.(type) {
		case deviceClaim:
			if p.id.DeviceID == deviceID && p.id.ModuleID == moduleID {
				return p.id, cl.Audience, nil
			}
			other = &p.id
		case serviceClaim:
			if p.credential == "" {
				continue
			}
			id, err := h.cfg.Devices.SAS(ctx, c.Host(), deviceID, moduleID, p.credential)
			if err == nil && id.Hub.Name == hb.Name {
				return id, cl.Audience, nil
			}
		}
	}
	st := state(c)
	if tlsState := c.Info().TLS; st != nil && tlsState != nil && len(tlsState.PeerCertificates) > 0 {
		k := deviceKey{deviceID, moduleID}
		st.mu.Lock()
		id, known := st.x509[k]
		st.mu.Unlock()
		if known {
			return id, "", nil
		}
		id, err := h.cfg.Devices.X509(ctx, c.Host(), deviceID, moduleID, tlsState.PeerCertificates)
		var de *deviceauth.Error
		if errors.As(err, &de) {
			return deviceauth.Identity{}, "", wire.Errorf("amqp:unauthorized-access", "%s", de.Reason)
		}
		if err != nil {
			return deviceauth.Identity{}, "", err
		}
		if id.Hub.Name != hb.Name {
			return deviceauth.Identity{}, "", wire.Errorf("amqp:unauthorized-access", "The certificate authenticated %s of hub %s; this connection is to hub %s.", describe(deviceID, moduleID), id.Hub.Name, hb.Name)
		}
		st.mu.Lock()
		st.x509[k] = id
		st.mu.Unlock()
		return id, "", nil
	}
	if other != nil {
		return deviceauth.Identity{}, "", wire.Errorf("amqp:unauthorized-access",
			"This connection authenticated %s; it may attach only to that identity's paths, not to those of %s.",
			describe(other.DeviceID, other.ModuleID), describe(deviceID, moduleID))
	}
	return deviceauth.Identity{}, "", wire.Errorf("amqp:unauthorized-access",
		"No token for %s was put on $cbs: put a SAS token for '%s' first (or connect with its X.509 certificate).",
		describe(deviceID, moduleID), deviceauth.Resource(hb.HostName, deviceID, moduleID))
}

func describe(deviceID, moduleID string) string {
	if moduleID != "" {
		return "module " + moduleID + " of device " + deviceID
	}
	return "device " + deviceID
}

var _ amqp.PlainAuthenticator = (*Handler)(nil)

// AuthenticatePlain implements amqp.PlainAuthenticator: IoT Hub's SASL
// PLAIN, user "{policy}@sas.root.{hub}" (a service) or
// "{deviceId}@sas.{hub}" (a device), password a SAS token. The claim is the
// one the same token would get on $cbs.
func (h *Handler) AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error) {
	name, hubName, ok := strings.Cut(user, "@sas.")
	if !ok || name == "" {
		return nil, errors.New("hubamqp: SASL PLAIN user must be {policy}@sas.root.{hub} or {deviceId}@sas.{hub}")
	}
	service := false
	if rest, isRoot := strings.CutPrefix(hubName, "root."); isRoot {
		hubName, service = rest, true
	}
	hb, found, err := h.cfg.Hubs.Get(ctx, hubName)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("hubamqp: SASL PLAIN: no IoT hub named %q", hubName)
	}
	if at, err := h.cfg.Hubs.Resolve(ctx, c.Host()); err == nil && at.Name != hb.Name {
		return nil, fmt.Errorf("hubamqp: SASL PLAIN names hub %s on a connection to hub %s", hb.Name, at.Name)
	}
	if service {
		caller, err := h.cfg.Service.Authenticate(ctx, password, hb, c.Host())
		if err != nil {
			return nil, err
		}
		if caller.PolicyName != "" && !strings.EqualFold(caller.PolicyName, name) {
			return nil, fmt.Errorf("hubamqp: SASL PLAIN user names policy %s, the token policy %s", name, caller.PolicyName)
		}
		return []amqp.Claim{{Audience: hb.HostName, Expires: caller.Expires, Principal: serviceClaim{caller: caller, credential: password}}}, nil
	}
	id, err := h.cfg.Devices.SAS(ctx, hb.HostName, name, "", password)
	if err != nil {
		return nil, err
	}
	if id.Hub.Name != hb.Name {
		return nil, fmt.Errorf("hubamqp: SASL PLAIN: the token is for hub %s", id.Hub.Name)
	}
	return []amqp.Claim{{Audience: deviceauth.Resource(hb.HostName, id.DeviceID, ""), Expires: id.ExpiresAt, Principal: deviceClaim{id: id}}}, nil
}
