package msi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/store"
)

// Selector picks one identity of a resource, as the App Service protocol's
// client_id, object_id/principal_id and mi_res_id parameters do.
type Selector struct {
	ClientID, ObjectID, ResourceID string
}

func (s Selector) empty() bool { return s.ClientID == "" && s.ObjectID == "" && s.ResourceID == "" }

// TokenSource mints managed-identity tokens for workloads running as a
// resource: programs under `outpost run --as` and the hub's own egress.
type TokenSource struct {
	resources  store.Resources
	principals store.Principals
	issuer     *identity.Issuer
}

// NewTokenSource builds a token source.
func NewTokenSource(resources store.Resources, principals store.Principals, issuer *identity.Issuer) *TokenSource {
	return &TokenSource{resources: resources, principals: principals, issuer: issuer}
}

// SelectionError says why no identity could be selected (the caller's fault).
type SelectionError struct{ Reason string }

func (e *SelectionError) Error() string { return e.Reason }

// Identity resolves which managed identity a workload running as
// resourceID gets for sel.
func (t *TokenSource) Identity(ctx context.Context, resourceID string, sel Selector) (store.Principal, error) {
	rid, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return store.Principal{}, &SelectionError{fmt.Sprintf("'%s' is not a resource id", resourceID)}
	}
	// A user-assigned identity resource runs as itself.
	if strings.EqualFold(rid.FullType(), UserAssignedType) {
		ps, err := t.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: rid.String()})
		if err != nil {
			return store.Principal{}, fmt.Errorf("msi: look up identity: %w", err)
		}
		if len(ps) == 0 {
			return store.Principal{}, &SelectionError{fmt.Sprintf("the user-assigned identity '%s' no longer exists", resourceID)}
		}
		if !sel.empty() && !matches(ps[0], sel) {
			return store.Principal{}, &SelectionError{fmt.Sprintf("the requested identity is not '%s'", resourceID)}
		}
		return ps[0], nil
	}
	res, err := t.resources.Get(ctx, rid.String())
	if errors.Is(err, store.ErrNotFound) {
		return store.Principal{}, &SelectionError{fmt.Sprintf("the resource '%s' no longer exists", resourceID)}
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("msi: get resource: %w", err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return store.Principal{}, fmt.Errorf("msi: decode resource: %w", err)
	}
	var b Block
	_ = doc.Decode("identity", &b)
	var candidates []store.Principal
	if b.System() && b.PrincipalID != "" {
		if p, err := t.principals.Get(ctx, b.PrincipalID); err == nil {
			candidates = append(candidates, p)
		}
	}
	if sel.empty() {
		if len(candidates) == 0 {
			return store.Principal{}, &SelectionError{fmt.Sprintf("the resource '%s' has no system-assigned identity; pass client_id, object_id or mi_res_id to pick a user-assigned one", resourceID)}
		}
		return candidates[0], nil
	}
	for id := range b.UserAssignedIdentities {
		ps, err := t.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: id})
		if err != nil {
			return store.Principal{}, fmt.Errorf("msi: look up identity: %w", err)
		}
		candidates = append(candidates, ps...)
	}
	for _, p := range candidates {
		if matches(p, sel) {
			return p, nil
		}
	}
	return store.Principal{}, &SelectionError{fmt.Sprintf("the resource '%s' has no identity matching %+v", resourceID, sel)}
}

func matches(p store.Principal, sel Selector) bool {
	return (sel.ClientID != "" && strings.EqualFold(p.AppID, sel.ClientID)) ||
		(sel.ObjectID != "" && strings.EqualFold(p.ObjectID, sel.ObjectID)) ||
		(sel.ResourceID != "" && strings.EqualFold(p.ResourceID, sel.ResourceID))
}

// Token mints a token for the selected identity of resourceID.
func (t *TokenSource) Token(ctx context.Context, resourceID string, sel Selector, resource string) (identity.Token, store.Principal, error) {
	p, err := t.Identity(ctx, resourceID, sel)
	if err != nil {
		return identity.Token{}, store.Principal{}, err
	}
	if _, ok := identity.ServiceOf(resource); !ok {
		return identity.Token{}, store.Principal{}, &SelectionError{fmt.Sprintf("tokens can't be issued for resource '%s'", resource)}
	}
	tok, err := t.issuer.Issue(p, resource, "2")
	return tok, p, err
}

// HeaderKeySetting is the Settings key of the secret that binds
// IDENTITY_HEADER values to resources.
const HeaderKeySetting = "identity/msi-header-key"

// HeaderSigner makes and checks IDENTITY_HEADER values: "v1.<resource
// id>.<hmac>", so any node can check a header without state.
type HeaderSigner struct{ key []byte }

// LoadHeaderSigner loads (or on first start creates) the shared key.
func LoadHeaderSigner(ctx context.Context, settings store.Settings) (*HeaderSigner, error) {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	raw, _ := json.Marshal(base64.StdEncoding.EncodeToString(k))
	stored, err := settings.SetIfAbsent(ctx, HeaderKeySetting, raw)
	if err != nil {
		return nil, fmt.Errorf("msi: header key: %w", err)
	}
	var s string
	if err := json.Unmarshal(stored, &s); err != nil {
		return nil, fmt.Errorf("msi: header key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("msi: header key: %w", err)
	}
	return &HeaderSigner{key: key}, nil
}

// Sign returns the header for resourceID.
func (h *HeaderSigner) Sign(resourceID string) string {
	id := base64.RawURLEncoding.EncodeToString([]byte(resourceID))
	return "v1." + id + "." + h.mac(id)
}

// Verify returns the resource id a header was signed for.
func (h *HeaderSigner) Verify(header string) (string, bool) {
	parts := strings.Split(header, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return "", false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(h.mac(parts[1]))) {
		return "", false
	}
	id, err := base64.RawURLEncoding.DecodeString(parts[1])
	return string(id), err == nil
}

func (h *HeaderSigner) mac(s string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Endpoint serves the App Service managed-identity protocol
// (GET ?api-version=2019-08-01&resource=… with X-IDENTITY-HEADER).
type Endpoint struct {
	source *TokenSource
	header *HeaderSigner
	log    *slog.Logger
}

// NewEndpoint builds the workload token endpoint.
func NewEndpoint(source *TokenSource, header *HeaderSigner, log *slog.Logger) *Endpoint {
	return &Endpoint{source: source, header: header, log: log}
}

// Path is where the endpoint is served (IDENTITY_ENDPOINT's path).
const Path = "/msi/token"

func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": msg})
	}
	if r.URL.Path != Path || r.Method != http.MethodGet {
		fail(http.StatusNotFound, "The managed identity endpoint is GET "+Path+".")
		return
	}
	resourceID, ok := e.header.Verify(r.Header.Get("X-IDENTITY-HEADER"))
	if !ok {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or not valid. Use the IDENTITY_HEADER value `outpost run --as` provided.")
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") == "" {
		fail(http.StatusBadRequest, "The api-version query parameter (2019-08-01) is required.")
		return
	}
	resource := strings.TrimSuffix(q.Get("resource"), "/.default")
	if resource == "" {
		fail(http.StatusBadRequest, "The resource query parameter is required, e.g. https://storage.azure.com/.")
		return
	}
	sel := Selector{ClientID: q.Get("client_id"), ObjectID: firstOf(q.Get("object_id"), q.Get("principal_id")), ResourceID: firstOf(q.Get("mi_res_id"), q.Get("msi_res_id"))}
	tok, p, err := e.source.Token(r.Context(), resourceID, sel, resource)
	var se *SelectionError
	switch {
	case errors.As(err, &se):
		fail(http.StatusBadRequest, se.Reason)
		return
	case err != nil:
		e.log.Error("managed identity token", "resource_id", resourceID, "err", err)
		fail(http.StatusInternalServerError, "The token service failed; retry shortly.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok.AccessToken,
		"expires_on":   strconv.FormatInt(tok.ExpiresOn.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    p.AppID,
	})
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
