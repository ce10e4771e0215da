package serviceapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/sas"
)

// BearerValidator checks an Entra token for https://iothubs.azure.net and
// returns the caller's object id, or an error saying why not.
type BearerValidator interface {
	ValidateIoTHubToken(ctx context.Context, token string) (objectID string, err error)
}

// DataAuthorizer decides an IoT Hub data action for a principal at the
// hub's resource id; reason says why not.
type DataAuthorizer interface {
	AuthorizeData(principalID, dataAction, scope string) (allowed bool, reason string)
}

// Access is what one operation needs: any of the policy rights, or the
// data action for bearer callers.
type Access struct {
	Rights     []string
	DataAction string
}

type access = Access

var (
	registryRead  = access{[]string{"RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/read"}
	registryWrite = access{[]string{"RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/write"}
	registryDel   = access{[]string{"RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/delete"}
	twinRead      = access{[]string{"ServiceConnect", "RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/twins/read"}
	twinWrite     = access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/twins/write"}
	statsRead     = access{[]string{"RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/statistics/read"}
)

// The service operations of the AMQP endpoints.
var (
	// C2DSend sends cloud-to-device messages.
	C2DSend = Access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/cloudToDeviceMessages/send/action"}
	// C2DFeedback receives cloud-to-device feedback.
	C2DFeedback = Access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/cloudToDeviceMessages/feedback/action"}
	// FileNotifications receives file upload notifications.
	FileNotifications = fileNotifications
)

func unauthorized(format string, args ...any) error {
	return &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess", Message: sprintf(format, args...)}
}

// ServiceCaller is a service credential that authenticated against a hub:
// a shared access policy's SAS or an Entra principal's bearer token.
type ServiceCaller struct {
	// PolicyName is the policy of a SAS ("" for bearer callers).
	PolicyName string
	// ObjectID is the principal of a bearer token.
	ObjectID string
	// Expires is when the SAS token stops being accepted, its expiry plus
	// sas.ClockSkew (zero for bearer tokens: their expiry is the
	// validator's business).
	Expires time.Time
}

// ServiceAuth authenticates and authorizes service credentials for every
// service surface (HTTPS here, AMQP in hubamqp).
type ServiceAuth struct {
	Bearer BearerValidator
	Authz  DataAuthorizer
	Now    func() time.Time
}

// Authenticate checks credential — "SharedAccessSignature sr=…&skn=…" of one
// of target's policies, or "Bearer <token for https://iothubs.azure.net>" —
// for target, reached at hosts (a SAS must cover the hub's host name or one
// of them). Refusals are *registry.Error 401.
func (a ServiceAuth) Authenticate(ctx context.Context, credential string, target hub.Hub, hosts ...string) (ServiceCaller, error) {
	credential = strings.TrimSpace(credential)
	if scheme, token, ok := strings.Cut(credential, " "); ok && strings.EqualFold(scheme, "Bearer") {
		if a.Bearer == nil {
			return ServiceCaller{}, unauthorized("Bearer tokens are not accepted here; send a shared access signature of a policy.")
		}
		oid, err := a.Bearer.ValidateIoTHubToken(ctx, strings.TrimSpace(token))
		if err != nil {
			return ServiceCaller{}, unauthorized("The bearer token is not valid for this hub: %v.", err)
		}
		return ServiceCaller{ObjectID: oid}, nil
	}
	if target.DisableLocalAuth {
		return ServiceCaller{}, unauthorized("Local (SAS) authentication is disabled for hub %s (disableLocalAuth); use a bearer token.", target.Name)
	}
	tok, err := sas.Parse(credential)
	if err != nil {
		return ServiceCaller{}, unauthorized("The shared access signature is malformed: %v.", err)
	}
	if tok.KeyName == "" {
		return ServiceCaller{}, unauthorized("This API needs a shared access policy token (with skn); device tokens are for device endpoints.")
	}
	if tok.Expired(a.now(), sas.ClockSkew) {
		return ServiceCaller{}, unauthorized("The shared access signature expired at %s.", tok.Expiry.UTC().Format(time.RFC3339))
	}
	covered := tok.Covers(target.HostName)
	for _, h := range hosts {
		covered = covered || (h != "" && (tok.Covers(h) || coversHostOnly(tok, h)))
	}
	if !covered {
		return ServiceCaller{}, unauthorized("The shared access signature's resource '%s' does not cover hub %s.", tok.Resource, target.HostName)
	}
	p, ok := target.Policy(tok.KeyName)
	if !ok || !(tok.Verify(p.PrimaryKey) || tok.Verify(p.SecondaryKey)) {
		return ServiceCaller{}, unauthorized("The shared access signature is not valid for policy '%s' of hub %s.", tok.KeyName, target.Name)
	}
	return ServiceCaller{PolicyName: p.KeyName, Expires: tok.Expiry.Add(sas.ClockSkew)}, nil
}

// Authorize decides need for an authenticated caller, with the hub's
// current policies and role assignments. Refusals are *registry.Error 401.
func (a ServiceAuth) Authorize(c ServiceCaller, target hub.Hub, need Access) error {
	if c.PolicyName == "" {
		if a.Authz == nil {
			return unauthorized("Principal %s is not authorized to perform %s on hub %s.", c.ObjectID, need.DataAction, target.Name)
		}
		if ok, reason := a.Authz.AuthorizeData(c.ObjectID, need.DataAction, target.ResourceID); !ok {
			return unauthorized("Principal %s is not authorized to perform %s on hub %s: %s", c.ObjectID, need.DataAction, target.Name, reason)
		}
		return nil
	}
	if target.DisableLocalAuth {
		return unauthorized("Local (SAS) authentication is disabled for hub %s (disableLocalAuth); use a bearer token.", target.Name)
	}
	p, ok := target.Policy(c.PolicyName)
	if !ok {
		return unauthorized("Hub %s has no shared access policy '%s' any more.", target.Name, c.PolicyName)
	}
	for _, right := range need.Rights {
		if p.Has(right) {
			return nil
		}
	}
	return unauthorized("Policy '%s' has rights '%s'; this operation needs %s.", p.KeyName, p.Rights, strings.Join(need.Rights, " or "))
}

func (a ServiceAuth) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// authorize checks the Authorization header of a service request.
func (h *Handler) authorize(r *http.Request, target hub.Hub, need access) error {
	header := strings.TrimSpace(r.Header.Get("Authorization"))
	if header == "" {
		return unauthorized("The request has no Authorization header. Send a shared access signature of a policy (SharedAccessSignature sr=…&sig=…&se=…&skn=…) or 'Bearer <token for https://iothubs.azure.net>'.")
	}
	auth := ServiceAuth{Bearer: h.bearer, Authz: h.authz, Now: h.now}
	c, err := auth.Authenticate(r.Context(), header, target, r.Host)
	if err != nil {
		return err
	}
	return auth.Authorize(c, target, need)
}

// coversHostOnly accepts a token whose resource is the request host
// without its port (clients sign the HostName of their connection string).
func coversHostOnly(tok sas.Token, host string) bool {
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
		return tok.Covers(host[:i])
	}
	return false
}
