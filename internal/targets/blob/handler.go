package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

// Version is the x-ms-version answered when the client sends none.
const Version = "2025-11-05"

// Accounts resolves account names; *storage.Directory implements it.
type Accounts interface {
	Get(ctx context.Context, name string) (storage.Account, bool, error)
}

// Containers reads and writes container records; *storage.Containers
// implements it.
type Containers interface {
	Create(ctx context.Context, accountID, name, publicAccess string, metadata map[string]string) (storage.Container, error)
	Get(ctx context.Context, accountID, name string) (storage.Container, error)
	SetMetadata(ctx context.Context, accountID, name string, metadata map[string]string) (storage.Container, error)
	Delete(ctx context.Context, accountID, name string) error
	List(ctx context.Context, accountID string) ([]storage.Container, error)
}

// Access makes bearer and network decisions; *access.Checker implements it.
type Access interface {
	Authenticate(ctx context.Context, token string, service identity.Service) (access.Caller, error)
	Authorize(caller access.Caller, action string, isDataAction bool, scope string) error
	Admit(n access.Network, ip netip.Addr, caller *access.Caller) error
}

// Config holds the handler's dependencies.
type Config struct {
	// DNSSuffix: accounts are served at {account}.blob.{DNSSuffix}.
	DNSSuffix  string
	Accounts   Accounts
	Containers Containers
	Blobs      *Disk
	Access     Access
	// AuthorityURL and TenantID make the Bearer challenge of a request
	// without credentials: authorization_uri={AuthorityURL}/{TenantID}/oauth2/authorize.
	AuthorityURL string
	TenantID     string
	Log          *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Handler is the Blob service REST data plane for virtual-hosted requests
// ({account}.blob.{suffix}); PathStyle serves /{account}/... on the same
// state.
type Handler struct {
	cfg    Config
	suffix string
	// buffers are the download copy buffers (downloadBuffer bytes).
	buffers sync.Pool
}

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, suffix: ".blob." + strings.ToLower(strings.Trim(cfg.DNSSuffix, "."))}
	h.buffers.New = func() any { return new([downloadBuffer]byte) }
	return h
}

// ServeHTTP serves {account}.blob.{suffix}/{container}/{blob}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	account, ok := strings.CutSuffix(host, h.suffix)
	if !ok || account == "" || strings.Contains(account, ".") {
		h.fail(w, r, errorf(http.StatusBadRequest, "InvalidUri",
			"The host '%s' names no storage account: use {account}%s.", r.Host, h.suffix))
		return
	}
	h.serve(w, r, account, r.URL.Path, "https://"+r.Host+"/")
}

// PathStyle returns the handler for path-style requests,
// https://host:port/{account}/{container}/{blob}, as Azurite serves them
// (the app mounts it on a port of its own).
func (h *Handler) PathStyle() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		account, rest, _ := strings.Cut(p, "/")
		h.serve(w, r, strings.ToLower(account), "/"+rest, "https://"+r.Host+"/"+account+"/")
	})
}

// request is one data-plane request on its way through the handler.
type request struct {
	w         http.ResponseWriter
	r         *http.Request
	account   storage.Account
	container string
	blob      string
	op        operation
	sas       *sasToken
	now       time.Time
	// endpoint is the service endpoint as the client addressed it
	// (ServiceEndpoint in listings).
	endpoint string
}

func endpoint(rq *request) string { return rq.endpoint }

func (h *Handler) setCommonHeaders(w http.ResponseWriter, r *http.Request, now time.Time) {
	hd := w.Header()
	if hd.Get("x-ms-request-id") == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		hd.Set("x-ms-request-id", id[:8]+"-"+id[8:12]+"-"+id[12:16]+"-"+id[16:20]+"-"+id[20:])
	}
	if c := r.Header.Get("x-ms-client-request-id"); c != "" && hd.Get("x-ms-client-request-id") == "" {
		hd.Set("x-ms-client-request-id", c)
	}
	v := r.Header.Get("x-ms-version")
	if v == "" {
		v = Version
	}
	hd.Set("x-ms-version", v)
	hd.Set("Date", now.UTC().Format(http.TimeFormat))
	hd.Set("Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0")
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	now := h.cfg.Now()
	h.setCommonHeaders(w, r, now)
	e := asError(err)
	if e.Status >= 500 {
		h.cfg.Log.Error("blob request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		h.cfg.Log.Debug("blob request refused", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
	}
	writeError(w, r, err, now)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, accountName, path, endpoint string) {
	now := h.cfg.Now()
	h.setCommonHeaders(w, r, now)
	rq := &request{w: w, r: r, now: now, endpoint: endpoint}
	if err := h.handle(r.Context(), rq, accountName, path); err != nil {
		// Drain what is left of a refused upload so the client reads the
		// error instead of a reset connection (bounded: a client sending
		// gigabytes after an early refusal gets the connection closed).
		if r.Body != nil {
			_, _ = ioCopyN(r.Body, 1<<20)
		}
		h.fail(w, r, err)
	}
}

func (h *Handler) handle(ctx context.Context, rq *request, accountName, path string) error {
	a, ok, err := h.cfg.Accounts.Get(ctx, accountName)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "ResourceNotFound",
			"The specified resource does not exist: there is no storage account '%s'. Create it with az storage account create (or an ARM PUT) first.", accountName)
	}
	rq.account = a
	if err := splitPath(rq, path); err != nil {
		return err
	}
	op, err := classify(rq.r, rq.container, rq.blob)
	if err != nil {
		return err
	}
	rq.op = op
	caller, err := h.authenticate(ctx, rq)
	if err != nil {
		return err
	}
	if err := h.cfg.Access.Admit(a.Network, clientIP(rq.r), caller); err != nil {
		if d, ok := access.IsDenial(err); ok {
			return errorf(http.StatusForbidden, "AuthorizationFailure",
				"This request is not authorized to perform this operation. %s", d.Reason)
		}
		return err
	}
	return op.run(h, ctx, rq, caller)
}

// splitPath reads container and blob names from the path (already
// unescaped) and validates them.
func splitPath(rq *request, path string) error {
	p := strings.TrimPrefix(path, "/")
	container, blob, _ := strings.Cut(p, "/")
	if container != "" && !storage.ValidContainerName(container) {
		return errorf(http.StatusBadRequest, "InvalidResourceName",
			"The specifed resource name contains invalid characters: container '%s'. Container names are 3-63 lower-case letters, digits and single hyphens.", truncate(container, 80))
	}
	if blob != "" {
		switch {
		case utf8.RuneCountInString(blob) > 1024:
			return errorf(http.StatusBadRequest, "InvalidResourceName", "The specifed resource name length is not within the permissible limits: blob names have at most 1024 characters.")
		case !utf8.ValidString(blob) || strings.ContainsRune(blob, 0):
			return errorf(http.StatusBadRequest, "InvalidResourceName", "The specifed resource name contains invalid characters: blob names must be valid UTF-8 without NUL.")
		}
	}
	rq.container, rq.blob = container, blob
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// clientIP is the address the request came from.
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(strings.Trim(r.RemoteAddr, "[]"))
	return a.Unmap()
}

// authenticate applies the request's credentials: Bearer, Shared Key, SAS
// or none. It returns the caller for Bearer (the network rules' trusted
// services bypass looks at it), nil otherwise.
func (h *Handler) authenticate(ctx context.Context, rq *request) (*access.Caller, error) {
	r := rq.r
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, cred, _ := strings.Cut(auth, " ")
	switch {
	case auth == "" && isSAS(r.URL.Query()):
		return nil, h.authorizeSAS(ctx, rq)
	case auth == "":
		return nil, h.authorizeAnonymous(ctx, rq)
	case strings.EqualFold(scheme, "Bearer"):
		return h.authorizeBearer(ctx, rq, strings.TrimSpace(cred))
	case strings.EqualFold(scheme, "SharedKey"):
		return nil, h.authorizeSharedKey(rq, strings.TrimSpace(cred))
	}
	return nil, errorf(http.StatusBadRequest, "InvalidAuthenticationInfo",
		"Authentication information is not given in the correct format. Check the value of Authorization header: use 'Bearer <token>' or 'SharedKey <account>:<signature>'.")
}

func (h *Handler) authorizeBearer(ctx context.Context, rq *request, token string) (*access.Caller, error) {
	if v := rq.r.Header.Get("x-ms-version"); v < "2017-11-09" {
		return nil, errAuthenticationFailed("Authentication scheme Bearer is not supported in this version: send x-ms-version 2017-11-09 or later.")
	}
	if rq.r.TLS == nil {
		return nil, errAuthenticationFailed("Authentication scheme Bearer is not allowed with HTTP: use HTTPS.")
	}
	caller, err := h.cfg.Access.Authenticate(ctx, token, identity.ServiceStorage)
	if err != nil {
		if d, ok := access.IsDenial(err); ok {
			return nil, errAuthenticationFailed(d.Reason)
		}
		return nil, err
	}
	if err := h.cfg.Access.Authorize(caller, rq.op.action, rq.op.dataAction, rq.op.scope(rq)); err != nil {
		if d, ok := access.IsDenial(err); ok {
			return nil, errPermissionMismatch(d.Reason)
		}
		return nil, err
	}
	return &caller, nil
}

func (h *Handler) authorizeSharedKey(rq *request, cred string) error {
	acct, sig64, ok := strings.Cut(cred, ":")
	if !ok {
		return errorf(http.StatusBadRequest, "InvalidAuthenticationInfo",
			"Authentication information is not given in the correct format. Check the value of Authorization header: 'SharedKey <account>:<base64 signature>'.")
	}
	if rq.op.bearerOnly {
		return errAuthenticationFailed(rq.op.name + " accepts only a Microsoft Entra (Bearer) token.")
	}
	if !rq.account.AllowSharedKeyAccess {
		return errKeyAuthNotPermitted(rq.account.Name)
	}
	if !strings.EqualFold(acct, rq.account.Name) {
		return errAuthenticationFailed("The account '" + acct + "' in the Authorization header is not the account '" + rq.account.Name + "' the request addresses.")
	}
	sig, err := decodeBase64(sig64)
	if err != nil {
		return errAuthenticationFailed("The signature in the Authorization header is not base64.")
	}
	if err := checkRequestDate(rq.r, rq.now); err != nil {
		return err
	}
	if ok, sts := verifySharedKey(rq.account.Name, rq.account.Keys, rq.r, sig); !ok {
		return errAuthenticationFailed("The MAC signature found in the HTTP request '" + sig64 + "' is not the same as any computed signature. Server used following string to sign: '" + strings.ReplaceAll(sts, "\n", `\n`) + "'.")
	}
	return nil
}

func errKeyAuthNotPermitted(account string) *Error {
	return errorf(http.StatusForbidden, "KeyBasedAuthenticationNotPermitted",
		"Key based authentication is not permitted on this storage account ('%s' has allowSharedKeyAccess false): use a Microsoft Entra token or a user delegation SAS.", account)
}

// checkRequestDate refuses Shared Key requests dated more than 15 minutes
// away from now (replayed or badly clocked).
func checkRequestDate(r *http.Request, now time.Time) error {
	d := r.Header.Get("x-ms-date")
	if d == "" {
		d = r.Header.Get("Date")
	}
	if d == "" {
		return errAuthenticationFailed("The request has no x-ms-date or Date header; Shared Key requests must be dated.")
	}
	t, err := http.ParseTime(d)
	if err != nil {
		return errAuthenticationFailed("The date header '" + d + "' is not an RFC 1123 date.")
	}
	if skew := now.Sub(t); skew > 15*time.Minute || skew < -15*time.Minute {
		return errAuthenticationFailed("Request date header too old: '" + d + "' is more than 15 minutes from the server's time " + now.UTC().Format(http.TimeFormat) + ".")
	}
	return nil
}

func (h *Handler) authorizeSAS(ctx context.Context, rq *request) error {
	t, err := parseSAS(rq.r.URL.Query())
	if err != nil {
		return err
	}
	if rq.op.bearerOnly {
		return errAuthenticationFailed(rq.op.name + " accepts only a Microsoft Entra (Bearer) token.")
	}
	if t.kind != delegationSAS && !rq.account.AllowSharedKeyAccess {
		return errKeyAuthNotPermitted(rq.account.Name)
	}
	if err := verifySAS(rq.account, t, rq.r, rq.container, rq.blob, clientIP(rq.r), rq.now); err != nil {
		return err
	}
	if err := rq.op.permitSAS(t, rq); err != nil {
		return err
	}
	if t.kind == delegationSAS {
		// A user delegation SAS acts for the principal that got the key: it
		// grants no more than that principal's roles do now.
		caller := access.Caller{PrincipalID: t.get("skoid"), TenantID: t.get("sktid")}
		if err := h.cfg.Access.Authorize(caller, rq.op.action, rq.op.dataAction, rq.op.scope(rq)); err != nil {
			if d, ok := access.IsDenial(err); ok {
				return errPermissionMismatch("The user delegation SAS was signed for " + t.get("skoid") + ", whose roles no longer allow this: " + d.Reason)
			}
			return err
		}
	}
	rq.sas = &t
	return nil
}

// authorizeAnonymous admits reads of public containers; anything else is
// told how to authenticate, with the Bearer challenge the SDKs follow.
func (h *Handler) authorizeAnonymous(ctx context.Context, rq *request) error {
	if rq.op.anonymous != "" && rq.account.AllowBlobPublicAccess && rq.container != "" {
		c, err := h.cfg.Containers.Get(ctx, rq.account.ResourceID, rq.container)
		if err == nil && (c.PublicAccess == "Container" || c.PublicAccess == rq.op.anonymous) {
			return nil
		}
	}
	e := errorf(http.StatusUnauthorized, "NoAuthenticationInformation",
		"Server failed to authenticate the request. Please refer to the information in the www-authenticate header. Send a Bearer token, a Shared Key signature or a SAS.")
	e.Header = http.Header{}
	e.Header.Set("WWW-Authenticate", "Bearer authorization_uri="+strings.TrimSuffix(h.cfg.AuthorityURL, "/")+"/"+h.cfg.TenantID+"/oauth2/authorize resource_id=https://storage.azure.com")
	return e
}

// errNotFoundAs maps a missing file or record to the storage error.
func errNotFoundAs(err error, e *Error) error {
	if isNotExist(err) {
		return e
	}
	return err
}
