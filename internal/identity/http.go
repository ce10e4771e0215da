package identity

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// Handler serves the issuer's HTTP surface: OIDC discovery, JWKS and the
// token endpoints, for the tenant id, "common", "organizations" and "adfs".
type Handler struct {
	issuer    *Issuer
	keys      *KeyRing
	directory *Directory
	log       *slog.Logger
}

// NewHandler builds the issuer's HTTP handler.
func NewHandler(issuer *Issuer, keys *KeyRing, directory *Directory, log *slog.Logger) *Handler {
	return &Handler{issuer: issuer, keys: keys, directory: directory, log: log}
}

// PathRouter is what Mount needs of server.PathRouter.
type PathRouter interface {
	Handle(segment string, h http.Handler)
}

// Mount registers the tenant segments.
func (h *Handler) Mount(r PathRouter) {
	for _, seg := range []string{h.issuer.TenantID(), "common", "organizations", "adfs"} {
		r.Handle(seg, h)
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	tenant := seg[0]
	rest := strings.ToLower(strings.Join(seg[1:], "/"))
	base := "https://" + r.Host + "/" + tenant
	switch {
	case r.Method == http.MethodGet && (rest == "v2.0/.well-known/openid-configuration" || rest == ".well-known/openid-configuration"):
		h.discovery(w, base, tenant, rest == ".well-known/openid-configuration")
	case r.Method == http.MethodGet && (rest == "discovery/v2.0/keys" || rest == "discovery/keys"):
		writeJSON(w, http.StatusOK, map[string]any{"keys": h.keys.JWKS()})
	case r.Method == http.MethodGet && tenant == "common" && rest == "discovery/instance":
		h.instanceDiscovery(w, r)
	case rest == "oauth2/v2.0/token" || rest == "oauth2/token":
		if r.Method != http.MethodPost {
			writeAuthError(w, &AuthError{Status: 405, Code: "invalid_request", AADSTS: 900561, Description: "The endpoint only accepts POST requests."})
			return
		}
		h.token(w, r, base+"/"+rest, rest == "oauth2/token")
	default:
		writeAuthError(w, &AuthError{Status: 404, Code: "invalid_request", AADSTS: 90002,
			Description: "No issuer endpoint at '" + r.URL.Path + "'. The token endpoint is /" + h.issuer.TenantID() + "/oauth2/v2.0/token (or /adfs/oauth2/token)."})
	}
}

func (h *Handler) discovery(w http.ResponseWriter, base, tenant string, v1 bool) {
	token := base + "/oauth2/v2.0/token"
	authorize := base + "/oauth2/v2.0/authorize"
	keys := base + "/discovery/v2.0/keys"
	if v1 || tenant == "adfs" {
		token, authorize, keys = base+"/oauth2/token", base+"/oauth2/authorize", base+"/discovery/keys"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                IssuerURL(h.issuer.TenantID()),
		"authorization_endpoint":                authorize,
		"token_endpoint":                        token,
		"jwks_uri":                              keys,
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic", "private_key_jwt"},
		"response_types_supported":              []string{"code", "id_token", "token id_token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"grant_types_supported":                 []string{"client_credentials", "password"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "outpost",
	})
}

// instanceDiscovery answers MSAL's alias lookup so it never needs the
// public cloud.
func (h *Handler) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + r.Host + "/" + h.issuer.TenantID() + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": r.Host, "preferred_cache": r.Host, "aliases": []string{r.Host}}},
	})
}

// token serves the client-credentials (and password) grants.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, endpoint string, v1 bool) {
	if err := r.ParseForm(); err != nil {
		writeAuthError(w, &AuthError{Status: 400, Code: "invalid_request", AADSTS: 900144, Description: "The request body must be application/x-www-form-urlencoded: " + err.Error()})
		return
	}
	f := r.PostForm
	resource := f.Get("resource")
	if resource == "" {
		resource = ResourceFromScope(f.Get("scope"))
	}
	if resource == "" {
		writeAuthError(w, &AuthError{Status: 400, Code: "invalid_request", AADSTS: 900144,
			Description: "The request body must contain the parameter 'scope' (e.g. https://management.core.windows.net//.default) or 'resource'."})
		return
	}
	if _, ok := ServiceOf(resource); !ok {
		writeAuthError(w, &AuthError{Status: 400, Code: "invalid_resource", AADSTS: 500011,
			Description: "The resource principal named " + resource + " was not found in the tenant. Outpost issues tokens for https://management.core.windows.net/, https://management.azure.com/, https://storage.azure.com/, https://eventhubs.azure.net/, https://servicebus.azure.net/ and https://iothubs.azure.net/."})
		return
	}
	p, acr, err := h.authenticate(r.Context(), r, f, endpoint)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			writeAuthError(w, ae)
			return
		}
		h.log.Error("token request failed", "err", err)
		writeAuthError(w, &AuthError{Status: 500, Code: "temporarily_unavailable", AADSTS: 90033, Description: "The token service failed; retry, and see the Outpost log if it persists."})
		return
	}
	tok, err := h.issuer.Issue(p, resource, acr)
	if err != nil {
		h.log.Error("mint token", "err", err)
		writeAuthError(w, &AuthError{Status: 500, Code: "temporarily_unavailable", AADSTS: 90033, Description: "The token service could not sign a token; retry shortly."})
		return
	}
	// The issuer's clock, not the wall clock: a reused token has less left.
	expiresIn := int(tok.ExpiresOn.Sub(h.issuer.now()).Seconds())
	body := map[string]any{"token_type": "Bearer", "expires_in": expiresIn, "ext_expires_in": expiresIn, "access_token": tok.AccessToken}
	if v1 {
		body["expires_on"] = strconv.FormatInt(tok.ExpiresOn.Unix(), 10)
		body["not_before"] = strconv.FormatInt(tok.IssuedAt.Unix(), 10)
		body["resource"] = resource
		// Entra's v1 endpoint sends these as strings; ADFS sends numbers, and
		// az (MSAL Python) adds expires_in to an int, so /adfs must too.
		if !strings.HasPrefix(endpoint, "https://"+r.Host+"/adfs/") {
			body["expires_in"] = strconv.Itoa(expiresIn)
			body["ext_expires_in"] = strconv.Itoa(expiresIn)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) authenticate(ctx context.Context, r *http.Request, f url.Values, endpoint string) (store.Principal, string, error) {
	switch grant := f.Get("grant_type"); grant {
	case "client_credentials":
		clientID, secret := f.Get("client_id"), f.Get("client_secret")
		if u, pw, ok := r.BasicAuth(); ok {
			clientID, secret = urlUnescape(u), urlUnescape(pw)
		}
		if a := f.Get("client_assertion"); a != "" {
			if t := f.Get("client_assertion_type"); t != ClientAssertionType {
				return store.Principal{}, "", &AuthError{Status: 400, Code: "invalid_request", AADSTS: 50027, Description: "client_assertion_type must be " + ClientAssertionType + "."}
			}
			p, err := h.directory.AuthenticateAssertion(ctx, clientID, a, []string{endpoint, IssuerURL(h.issuer.TenantID())})
			return p, "2", err
		}
		if clientID == "" || secret == "" {
			return store.Principal{}, "", &AuthError{Status: 401, Code: "invalid_client", AADSTS: 7000218,
				Description: "The request body must contain the parameter 'client_assertion' or 'client_secret', and 'client_id'."}
		}
		p, err := h.directory.AuthenticateSecret(ctx, clientID, secret)
		return p, "1", err
	case "password":
		p, err := h.directory.AuthenticatePassword(ctx, f.Get("username"), f.Get("password"))
		return p, "0", err
	case "":
		return store.Principal{}, "", &AuthError{Status: 400, Code: "invalid_request", AADSTS: 900144, Description: "The request body must contain the parameter 'grant_type'."}
	default:
		return store.Principal{}, "", &AuthError{Status: 400, Code: "unsupported_grant_type", AADSTS: 70003,
			Description: "The grant type '" + grant + "' is not supported; use client_credentials (or password for users)."}
	}
}

func urlUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// writeAuthError renders the OAuth2 error body Entra sends.
func writeAuthError(w http.ResponseWriter, e *AuthError) {
	trace := newUUID()
	writeJSON(w, e.Status, map[string]any{
		"error":             e.Code,
		"error_description": "AADSTS" + strconv.Itoa(e.AADSTS) + ": " + e.Description + " Trace ID: " + trace + " Timestamp: " + time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"error_codes":       []int{e.AADSTS},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    newUUID(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
