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

// access is what one request needs: a policy right and the equivalent
// data action for bearer callers.
type access struct {
	rights     []string // any of these policy rights
	dataAction string
}

var (
	registryRead  = access{[]string{"RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/read"}
	registryWrite = access{[]string{"RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/write"}
	registryDel   = access{[]string{"RegistryWrite"}, "Microsoft.Devices/IotHubs/devices/delete"}
	twinRead      = access{[]string{"ServiceConnect", "RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/twins/read"}
	twinWrite     = access{[]string{"ServiceConnect"}, "Microsoft.Devices/IotHubs/twins/write"}
	statsRead     = access{[]string{"RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/statistics/read"}
)

func unauthorized(format string, args ...any) error {
	return &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess", Message: sprintf(format, args...)}
}

// authorize checks the Authorization header of a service request.
func (h *Handler) authorize(r *http.Request, target hub.Hub, need access) error {
	header := strings.TrimSpace(r.Header.Get("Authorization"))
	if header == "" {
		return unauthorized("The request has no Authorization header. Send a shared access signature of a policy (SharedAccessSignature sr=…&sig=…&se=…&skn=…) or 'Bearer <token for https://iothubs.azure.net>'.")
	}
	if scheme, token, ok := strings.Cut(header, " "); ok && strings.EqualFold(scheme, "Bearer") {
		oid, err := h.bearer.ValidateIoTHubToken(r.Context(), strings.TrimSpace(token))
		if err != nil {
			return unauthorized("The bearer token is not valid for this hub: %v.", err)
		}
		if ok, reason := h.authz.AuthorizeData(oid, need.dataAction, target.ResourceID); !ok {
			return &registry.Error{Status: http.StatusUnauthorized, Code: "IotHubUnauthorizedAccess",
				Message: sprintf("Principal %s is not authorized to perform %s on hub %s: %s", oid, need.dataAction, target.Name, reason)}
		}
		return nil
	}
	if target.DisableLocalAuth {
		return unauthorized("Local (SAS) authentication is disabled for hub %s (disableLocalAuth); use a bearer token.", target.Name)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return unauthorized("The shared access signature is malformed: %v.", err)
	}
	if tok.KeyName == "" {
		return unauthorized("This API needs a shared access policy token (with skn); device tokens are for device endpoints.")
	}
	if tok.Expired(h.now(), 0) {
		return unauthorized("The shared access signature expired at %s.", tok.Expiry.UTC().Format(time.RFC3339))
	}
	if !tok.Covers(target.HostName) && !tok.Covers(r.Host) && !coversHostOnly(tok, r.Host) {
		return unauthorized("The shared access signature's resource '%s' does not cover hub %s.", tok.Resource, target.HostName)
	}
	p, ok := target.Policy(tok.KeyName)
	if !ok || !(tok.Verify(p.PrimaryKey) || tok.Verify(p.SecondaryKey)) {
		return unauthorized("The shared access signature is not valid for policy '%s' of hub %s.", tok.KeyName, target.Name)
	}
	for _, right := range need.rights {
		if p.Has(right) {
			return nil
		}
	}
	return unauthorized("Policy '%s' has rights '%s'; this operation needs %s.", p.KeyName, p.Rights, strings.Join(need.rights, " or "))
}

// coversHostOnly accepts a token whose resource is the request host
// without its port (clients sign the HostName of their connection string).
func coversHostOnly(tok sas.Token, host string) bool {
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
		return tok.Covers(host[:i])
	}
	return false
}
