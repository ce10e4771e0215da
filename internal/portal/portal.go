package portal

import (
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
)

//go:embed web/templates/*.html web/static/*
var webFiles embed.FS

// Prefix is the path the portal is mounted at on the main endpoint.
const Prefix = "/portal/"

// Config holds what the portal needs.
type Config struct {
	// API is Outpost's public HTTP surface on the main endpoint (the
	// resource manager, the token endpoint, the hubs' service API). The
	// portal calls it in process with the signed-in principal's token.
	API            http.Handler
	TenantID       string
	SubscriptionID string
	DNSSuffix      string
	Log            *slog.Logger
	Now            func() time.Time
	// OperationTimeout bounds how long a save waits for a long-running
	// operation (default 60 s).
	OperationTimeout time.Duration
}

// Handler serves the portal under Prefix.
type Handler struct {
	api              http.Handler
	tenantID         string
	subscriptionID   string
	dnsSuffix        string
	log              *slog.Logger
	now              func() time.Time
	operationTimeout time.Duration
	sessions         *sessions
	pages            map[string]*template.Template
	static           http.Handler
}

// New builds the portal; it fails only if its embedded templates do not parse.
func New(c Config) (*Handler, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		api: c.API, tenantID: c.TenantID, subscriptionID: c.SubscriptionID, dnsSuffix: c.DNSSuffix,
		log: c.Log, now: c.Now, operationTimeout: c.OperationTimeout, sessions: newSessions(c.Now),
		pages: map[string]*template.Template{},
	}
	names, err := fs.Glob(webFiles, "web/templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("portal: templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(n[strings.LastIndex(n, "/")+1:], ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(webFiles, "web/templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("portal: template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	static, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		return nil, fmt.Errorf("portal: static files: %w", err)
	}
	h.static = http.StripPrefix(Prefix+"static/", http.FileServer(http.FS(static)))
	return h, nil
}

var templateFuncs = template.FuncMap{
	"lastSegment": func(s string) string { return s[strings.LastIndex(s, "/")+1:] },
	"authPicker": func(ids []userIdentity, prefix string) authPickerData {
		return authPickerData{Identities: ids, Prefix: prefix}
	},
}

// authPickerData feeds the shared authentication type picker.
type authPickerData struct {
	Identities []userIdentity
	Prefix     string
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// securityHeaders go on every portal response: no inline script or style
// (so an injected tag would not run even if escaping failed), no framing,
// no caching of pages that carry CSRF tokens.
func securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if strings.HasPrefix(rest, "static/") {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.static.ServeHTTP(w, r)
		return
	}
	if rest == "signin" {
		h.signIn(w, r)
		return
	}
	s := h.sessions.get(r)
	if s == nil {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h.render(w, http.StatusForbidden, "message", &page{Title: "Signed out",
			Error: &APIError{Status: http.StatusForbidden, Code: "SessionRequired", Message: "This change needs a signed-in session. Sign in again and repeat it."}})
		return
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil || !validCSRF(r, s.csrf) {
			h.render(w, http.StatusForbidden, "message", &page{Title: "Request refused", Session: s,
				Error: &APIError{Status: http.StatusForbidden, Code: "InvalidCSRFToken", Message: "The form's anti-forgery token is missing or wrong, so nothing was changed. Reload the page and try again."}})
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.notice = h.sessions.takeNotice(s.id)
	var err error
	switch rest {
	case "":
		err = h.home(w, r, s)
	case "signout":
		if r.Method != http.MethodPost {
			http.Redirect(w, r, Prefix, http.StatusSeeOther)
			return
		}
		h.sessions.delete(s.id)
		setCookie(w, sessionCookie, "", -1)
		http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
		return
	case "routing":
		err = h.routingBlade(w, r, s)
	case "fileupload":
		err = h.fileUpload(w, r, s)
	case "networking":
		err = h.networking(w, r, s)
	case "devices":
		err = h.devices(w, r, s)
	case "jobs":
		err = h.jobs(w, r, s)
	case "identities":
		err = h.identities(w, r, s)
	case "deployments":
		err = h.deployments(w, r, s)
	case "telemetry":
		err = h.telemetry(w, r, s)
	case "resource":
		err = h.overview(w, r, s)
	case "identity":
		err = h.identityBlade(w, r, s)
	case "iam":
		err = h.iam(w, r, s)
	default:
		h.render(w, http.StatusNotFound, "message", &page{Title: "Not found", Session: s,
			Error: &APIError{Status: http.StatusNotFound, Code: "NotFound", Message: "The portal has no page at " + r.URL.Path + "."}})
		return
	}
	if err != nil {
		// A page that could not even read what it shows: the API's refusal
		// (e.g. no read access) in place of the page.
		ae := asAPIError(err)
		if ae.Status >= 500 {
			h.log.Error("portal page", "path", r.URL.Path, "err", err)
		}
		h.render(w, ae.Status, "message", &page{Title: "Cannot show this page", Session: s, Error: ae})
	}
}

// page is what every template receives.
type page struct {
	Title    string
	Session  *session
	Notice   string
	Error    *APIError
	Resource *resourceRef
	Blade    string
	Data     any
}

// CSRF is the token forms must carry.
func (p *page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.csrf
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) {
	if p.Session != nil && p.Notice == "" {
		p.Notice = p.Session.notice
	}
	t, ok := h.pages[name]
	if !ok {
		http.Error(w, "portal: no template "+name, http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("portal: render", "page", name, "err", err)
		http.Error(w, "portal: the page failed to render; see the Outpost log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// done ends a successful change: a notice for the next page and a 303 to it
// (so a reload does not post the form again).
func (h *Handler) done(w http.ResponseWriter, r *http.Request, s *session, notice, to string) {
	h.sessions.setNotice(s.id, notice)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// ---- sign-in ----

type signInData struct {
	Next     string
	Kind     string
	ClientID string
	Username string
	Token    string // the sign-in form's anti-forgery token
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

// signIn shows the form and runs the grant. The form carries a token that
// must match a cookie set with the form (double submit), so no other site
// can sign a browser in as someone else.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	d := signInData{Next: safeNext(r.FormValue("next")), Kind: "sp"}
	if r.Method == http.MethodGet {
		d.Token = randomToken()
		setCookie(w, signInCookie, d.Token, 600)
		h.render(w, http.StatusOK, "signin", &page{Title: "Sign in", Data: d})
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c, cookieErr := r.Cookie(signInCookie)
	if err := r.ParseForm(); err != nil || cookieErr != nil || !validCSRF(r, c.Value) {
		d.Token = randomToken()
		setCookie(w, signInCookie, d.Token, 600)
		h.render(w, http.StatusForbidden, "signin", &page{Title: "Sign in", Data: d,
			Error: &APIError{Status: http.StatusForbidden, Code: "InvalidCSRFToken", Message: "The sign-in form expired or did not come from this portal. Try again."}})
		return
	}
	d.Kind, d.ClientID, d.Username = r.PostFormValue("kind"), r.PostFormValue("client_id"), r.PostFormValue("username")
	form := url.Values{}
	name := ""
	switch d.Kind {
	case "user":
		form.Set("grant_type", "password")
		form.Set("username", d.Username)
		form.Set("password", r.PostFormValue("password"))
		name = d.Username
	default:
		d.Kind = "sp"
		form.Set("grant_type", "client_credentials")
		form.Set("client_id", d.ClientID)
		form.Set("client_secret", r.PostFormValue("client_secret"))
		name = d.ClientID
	}
	armTok, expires, err := h.token(r, form, "https://management.core.windows.net/")
	if err != nil {
		d.Token = randomToken()
		setCookie(w, signInCookie, d.Token, 600)
		ae := asAPIError(err)
		h.render(w, ae.Status, "signin", &page{Title: "Sign in", Data: d, Error: ae})
		return
	}
	se := h.sessions.create(name, tokenObjectID(armTok), armTok, expires)
	setCookie(w, signInCookie, "", -1)
	setCookie(w, sessionCookie, se.id, int(expires.Sub(h.now()).Seconds()))
	h.log.Info("portal sign-in", "principal", se.objectID, "name", name)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// token runs a grant against Outpost's own token endpoint, in process.
func (h *Handler) token(r *http.Request, form url.Values, resource string) (string, time.Time, error) {
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("scope", resource+".default")
	resp, err := h.do(r.Context(), call{method: http.MethodPost, host: r.Host, path: "/" + h.tenantID + "/oauth2/v2.0/token", body: f, remote: r.RemoteAddr})
	if err != nil {
		return "", time.Time{}, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := resp.decode(&tok); err != nil {
		return "", time.Time{}, err
	}
	return tok.AccessToken, h.now().Add(time.Duration(tok.ExpiresIn) * time.Second), nil
}

// tokenObjectID reads the oid claim of a token the portal just received
// from Outpost's own issuer (for display and logs; never for decisions).
func tokenObjectID(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		OID string `json:"oid"`
	}
	_ = json.Unmarshal(b, &c)
	return c.OID
}

// ---- resources ----

// resourceRef is the resource a blade shows.
type resourceRef struct {
	ID    string
	Name  string
	Type  string // Namespace/type
	Group string
	Kind  string // hub, storage, messaging, identity, other
}

// scopeID matches a subscription or resource group id, which
// arm.ParseResourceID (resources only) does not take.
var scopeID = regexp.MustCompile(`(?i)^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?/?$`)

func parseRef(id string) (*resourceRef, error) {
	if m := scopeID.FindStringSubmatch(id); m != nil {
		if m[2] == "" {
			return &resourceRef{ID: "/subscriptions/" + m[1], Name: m[1], Type: "Microsoft.Resources/subscriptions", Kind: "other"}, nil
		}
		return &resourceRef{ID: "/subscriptions/" + m[1] + "/resourceGroups/" + m[2], Name: m[2], Group: m[2],
			Type: "Microsoft.Resources/resourceGroups", Kind: "group"}, nil
	}
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidResourceId", Message: fmt.Sprintf("'%s' is not a resource id.", id)}
	}
	ref := &resourceRef{ID: rid.String(), Group: rid.ResourceGroup}
	switch {
	case len(rid.Types) == 0 && rid.ResourceGroup != "":
		ref.Name, ref.Type = rid.ResourceGroup, "Microsoft.Resources/resourceGroups"
	case len(rid.Types) == 0:
		ref.Name, ref.Type = rid.Subscription, "Microsoft.Resources/subscriptions"
	default:
		ref.Name, ref.Type = rid.Name(), rid.FullType()
	}
	switch strings.ToLower(ref.Type) {
	case "microsoft.resources/resourcegroups":
		ref.Kind = "group"
	case "microsoft.devices/iothubs":
		ref.Kind = "hub"
	case "microsoft.storage/storageaccounts":
		ref.Kind = "storage"
	case "microsoft.eventhub/namespaces", "microsoft.servicebus/namespaces":
		ref.Kind = "messaging"
	default:
		ref.Kind = "other"
	}
	return ref, nil
}

// refFromQuery reads ?id= and checks the resource is readable by reading it.
func (h *Handler) refFromQuery(r *http.Request) (*resourceRef, error) {
	id := r.FormValue("id")
	if id == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "MissingResourceId", Message: "The page needs ?id=<resource id>."}
	}
	return parseRef(id)
}

// Blades lists the pages of the resource, for the side navigation.
func (r *resourceRef) Blades() []blade {
	b := []blade{{"resource", "Overview"}, {"iam", "Access control (IAM)"}}
	switch r.Kind {
	case "hub":
		b = append(b, blade{"identity", "Identity"}, blade{"routing", "Message routing"},
			blade{"fileupload", "File upload"}, blade{"devices", "Devices"},
			blade{"jobs", "Import/Export jobs"}, blade{"telemetry", "Telemetry"})
	case "storage", "messaging":
		b = append(b, blade{"networking", "Networking"})
	case "group":
		b = append(b, blade{"deployments", "Deployments"})
	}
	return b
}

type blade struct{ Path, Label string }

type resourceRow struct {
	ID, Name, Type, Group, Location string
	Tags                            map[string]string
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request, s *session) error {
	if r.Method == http.MethodPost {
		return &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "The home page has no changes to post."}
	}
	items, err := h.list(r.Context(), s, "/subscriptions/"+h.subscriptionID+"/resources", resourcesAPI)
	if err != nil {
		return err
	}
	rows := make([]resourceRow, 0, len(items))
	for _, it := range items {
		if strings.HasPrefix(strings.ToLower(str(it, "type")), "microsoft.authorization/") {
			continue // role assignments are shown on Access control (IAM)
		}
		row := resourceRow{ID: str(it, "id"), Name: str(it, "name"), Type: str(it, "type"), Location: str(it, "location")}
		if ref, err := parseRef(row.ID); err == nil {
			row.Group = ref.Group
		}
		if tags, ok := it["tags"].(map[string]any); ok {
			row.Tags = map[string]string{}
			for k, v := range tags {
				row.Tags[k] = fmt.Sprint(v)
			}
		}
		rows = append(rows, row)
	}
	groups, err := h.groups(r, s)
	if err != nil {
		return err
	}
	h.render(w, http.StatusOK, "home", &page{Title: "All resources", Session: s, Data: struct {
		Subscription string
		Resources    []resourceRow
		Groups       []resourceRow
	}{h.subscriptionID, rows, groups}})
	return nil
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	resp, err := h.arm(r.Context(), s, http.MethodGet, ref.ID, apiVersionFor(ref), nil)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := resp.decode(&doc); err != nil {
		return err
	}
	pretty, _ := json.MarshalIndent(doc, "", "  ")
	tags := map[string]string{}
	if t, ok := doc["tags"].(map[string]any); ok {
		for k, v := range t {
			tags[k] = fmt.Sprint(v)
		}
	}
	h.render(w, http.StatusOK, "overview", &page{Title: ref.Name, Session: s, Resource: ref, Blade: "resource", Data: struct {
		Location string
		Tags     map[string]string
		JSON     string
	}{str(doc, "location"), tags, string(pretty)}})
	return nil
}

// apiVersionFor picks an api-version the resource manager serves for ref.
func apiVersionFor(ref *resourceRef) string {
	switch strings.ToLower(ref.Type) {
	case "microsoft.devices/iothubs":
		return hubAPI
	case "microsoft.managedidentity/userassignedidentities":
		return msiAPI
	case "microsoft.storage/storageaccounts", "microsoft.storage/storageaccounts/blobservices/containers":
		return storageAPI
	}
	switch {
	case strings.HasPrefix(strings.ToLower(ref.Type), "microsoft.eventhub/"):
		return eventHubAPI
	case strings.HasPrefix(strings.ToLower(ref.Type), "microsoft.servicebus/"):
		return serviceBusAPI
	}
	return resourcesAPI
}

// str reads a string member of a decoded JSON object ("" if absent).
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// obj reads an object member of a decoded JSON object (nil if absent).
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}
