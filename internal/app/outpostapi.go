package app

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// outpostAPI serves Outpost's own REST API under /outpost/, for what Azure
// does through services Outpost does not copy (Microsoft Graph) or has no
// equivalent of (handing a program a resource's managed identity). It uses
// the control plane's authentication, authorization and error envelope.
//
//	POST   /outpost/identity/runAs                    {"resourceId"} → IDENTITY_ENDPOINT/HEADER
//	GET    /outpost/iothubs/{name}/events?fromStart=true  the hub's telemetry as JSON lines
//	POST   /outpost/iothubs/{name}/devices/{id}/messages   a cloud-to-device message
//	GET    /outpost/iothubs/{name}/routing/metrics   this node's routing history (routingmetrics.go)
//	GET    /outpost/eventhubs/{namespace}/{eventhub}/events?partition=&fromSequence=&max=&consumerGroup=
//	GET    /outpost/directory/servicePrincipals
//	POST   /outpost/directory/servicePrincipals       {"displayName"} → ids and a secret
//	GET    /outpost/directory/servicePrincipals/{id}  (object id or app id)
//	DELETE /outpost/directory/servicePrincipals/{id}
//	POST   /outpost/directory/servicePrincipals/{id}/resetCredential {"append"}
//	GET    /outpost/directory/users
//	POST   /outpost/directory/users                   {"name","password"}
//	DELETE /outpost/directory/users/{name}
func (a *App) outpostAPI() http.Handler {
	authn := tokenAuthenticator{validator: a.validator}
	authz := rbacAuthorizer{engine: a.rbac}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authn.Authenticate(r)
		if err == nil {
			err = a.serveOutpostAPI(w, r, p, authz)
		}
		if err != nil {
			ae := arm.AsError(err)
			if ae.Status >= 500 {
				a.log.Error("outpost api", "path", r.URL.Path, "err", err)
			}
			arm.WriteError(w, ae)
		}
	})
}

func (a *App) serveOutpostAPI(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer) error {
	seg := arm.Segments(r.URL.Path)[1:]
	ctx := r.Context()
	is := func(i int, s string) bool { return len(seg) > i && strings.EqualFold(seg[i], s) }
	// Managing principals is tenant administration: it needs the right to
	// grant access on the default subscription (Owner, User Access Administrator).
	admin := func() error {
		return authz.decide(p, "Microsoft.Authorization/roleAssignments/write", arm.SubscriptionID(a.installation.SubscriptionID))
	}
	switch {
	case len(seg) == 2 && is(0, "identity") && is(1, "runAs") && r.Method == http.MethodPost:
		var in struct {
			ResourceID string `json:"resourceId"`
		}
		if err := decodeBody(r, &in); err != nil {
			return err
		}
		id, err := arm.ParseResourceID(in.ResourceID)
		if err != nil || id.IsCollection() {
			return arm.Errorf(http.StatusBadRequest, "InvalidResourceId", "'%s' is not a resource id.", in.ResourceID)
		}
		if _, err := a.arm.GetResource(ctx, id); err != nil {
			return err
		}
		// Running code as a resource is what deploying code to it means in
		// Azure: it needs the right to write the resource.
		if err := authz.decide(p, id.FullType()+"/write", id.String()); err != nil {
			return err
		}
		if _, err := a.tokens.Identity(ctx, id.String(), msi.Selector{}); err != nil {
			var se *msi.SelectionError
			if errors.As(err, &se) && !strings.Contains(se.Reason, "no system-assigned identity") {
				return arm.Errorf(http.StatusBadRequest, "NoManagedIdentity", "%s", se.Reason)
			}
		}
		return writeJSON(w, http.StatusOK, map[string]string{
			"identityEndpoint": a.IdentityEndpoint(), "identityHeader": a.msiHeader.Sign(id.String()),
		})
	case len(seg) == 5 && is(0, "iothubs") && is(2, "devices") && is(4, "messages") && r.Method == http.MethodPost:
		return a.sendC2D(w, r, p, authz, seg[1], seg[3])
	case len(seg) == 3 && is(0, "iothubs") && is(2, "events") && r.Method == http.MethodGet:
		return a.monitorEvents(w, r, p, authz, seg[1])
	case len(seg) == 4 && is(0, "iothubs") && is(2, "routing") && is(3, "metrics") && r.Method == http.MethodGet:
		return a.routingMetrics(w, r, p, authz, seg[1])
	case len(seg) >= 3 && is(0, "iothubs") && is(2, "jobs"):
		return a.hubJobs(w, r, p, authz, seg[1], seg[3:])
	case len(seg) == 4 && is(0, "eventhubs") && is(3, "events") && r.Method == http.MethodGet:
		return a.readEventHub(w, r, p, authz, seg[1], seg[2])
	case is(0, "directory") && is(1, "servicePrincipals"):
		if err := admin(); err != nil {
			return err
		}
		return a.servicePrincipalsAPI(w, r, seg[2:])
	case is(0, "directory") && is(1, "users"):
		if err := admin(); err != nil {
			return err
		}
		return a.usersAPI(w, r, seg[2:])
	}
	return arm.Errorf(http.StatusNotFound, "NotFound", "No Outpost API at '%s %s'.", r.Method, r.URL.Path)
}

// principalView is how principals are shown (never with credentials).
type principalView struct {
	ObjectID    string `json:"objectId"`
	AppID       string `json:"appId,omitempty"`
	DisplayName string `json:"displayName"`
	Type        string `json:"principalType"`
	ResourceID  string `json:"alternativeNames,omitempty"`
	Secret      string `json:"password,omitempty"`
	TenantID    string `json:"tenant"`
}

func (a *App) view(p store.Principal, secret string) principalView {
	return principalView{ObjectID: p.ObjectID, AppID: p.AppID, DisplayName: p.Name, Type: p.Kind,
		ResourceID: p.ResourceID, Secret: secret, TenantID: a.installation.TenantID}
}

func (a *App) listPrincipals(w http.ResponseWriter, r *http.Request, kind string) error {
	ps, err := a.directory.List(r.Context(), store.PrincipalFilter{Kind: kind})
	if err != nil {
		return err
	}
	out := []principalView{}
	for _, p := range ps {
		out = append(out, a.view(p, ""))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (a *App) findServicePrincipal(r *http.Request, id string) (store.Principal, error) {
	p, err := a.directory.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		p, err = a.directory.GetByAppID(r.Context(), id)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.Kind != store.KindServicePrincipal) {
		return store.Principal{}, arm.Errorf(http.StatusNotFound, "ServicePrincipalNotFound", "No service principal with object id or app id '%s'.", id)
	}
	return p, err
}

func (a *App) servicePrincipalsAPI(w http.ResponseWriter, r *http.Request, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		return a.listPrincipals(w, r, store.KindServicePrincipal)
	case len(rest) == 0 && r.Method == http.MethodPost:
		var in struct {
			DisplayName string `json:"displayName"`
		}
		if err := decodeBody(r, &in); err != nil {
			return err
		}
		if strings.TrimSpace(in.DisplayName) == "" {
			return arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "displayName is required.")
		}
		p, secret, err := a.directory.CreateServicePrincipal(ctx, in.DisplayName)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, a.view(p, secret))
	case len(rest) == 1 && r.Method == http.MethodGet:
		p, err := a.findServicePrincipal(r, rest[0])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, a.view(p, ""))
	case len(rest) == 1 && r.Method == http.MethodDelete:
		p, err := a.findServicePrincipal(r, rest[0])
		if err != nil {
			return err
		}
		if p.ObjectID == a.operator.ObjectID {
			return arm.Errorf(http.StatusConflict, "OperatorPrincipal", "The operator principal can't be deleted; it is how `outpost` itself signs in.")
		}
		if err := a.directory.Delete(ctx, p.ObjectID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case len(rest) == 2 && strings.EqualFold(rest[1], "resetCredential") && r.Method == http.MethodPost:
		var in struct {
			Append bool `json:"append"`
			// Certificate is a PEM certificate whose key may sign client
			// assertions (instead of a new secret).
			Certificate string `json:"certificate"`
		}
		if err := decodeBody(r, &in); err != nil {
			return err
		}
		p, err := a.findServicePrincipal(r, rest[0])
		if err != nil {
			return err
		}
		if in.Certificate != "" {
			block, _ := pem.Decode([]byte(in.Certificate))
			if block == nil || block.Type != "CERTIFICATE" {
				return arm.Errorf(http.StatusBadRequest, "InvalidCertificate", "certificate must be a PEM CERTIFICATE block.")
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return arm.Errorf(http.StatusBadRequest, "InvalidCertificate", "The certificate can't be parsed: %v", err)
			}
			if err := a.directory.AddCertificate(ctx, p.ObjectID, cert); err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, a.view(p, ""))
		}
		secret, err := a.directory.ResetSecret(ctx, p.ObjectID, in.Append)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, a.view(p, secret))
	}
	return arm.Errorf(http.StatusNotFound, "NotFound", "No Outpost API at '%s %s'.", r.Method, r.URL.Path)
}

func (a *App) usersAPI(w http.ResponseWriter, r *http.Request, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		return a.listPrincipals(w, r, store.KindUser)
	case len(rest) == 0 && r.Method == http.MethodPost:
		var in struct {
			Name     string `json:"name"`
			Password string `json:"password"`
		}
		if err := decodeBody(r, &in); err != nil {
			return err
		}
		p, err := a.directory.CreateUser(ctx, in.Name, in.Password)
		if errors.Is(err, store.ErrAlreadyExists) {
			return arm.Errorf(http.StatusConflict, "UserExists", "A user named '%s' already exists.", in.Name)
		}
		if err != nil {
			return arm.Errorf(http.StatusBadRequest, "InvalidUser", "%v", err)
		}
		return writeJSON(w, http.StatusCreated, a.view(p, ""))
	case len(rest) == 1 && r.Method == http.MethodDelete:
		p, err := a.store.Principals().GetUser(ctx, rest[0])
		if errors.Is(err, store.ErrNotFound) {
			return arm.Errorf(http.StatusNotFound, "UserNotFound", "No user named '%s'.", rest[0])
		}
		if err != nil {
			return err
		}
		if err := a.directory.Delete(ctx, p.ObjectID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return arm.Errorf(http.StatusNotFound, "NotFound", "No Outpost API at '%s %s'.", r.Method, r.URL.Path)
}

func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "could not read the body: %v", err)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
