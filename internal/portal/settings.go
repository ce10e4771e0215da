package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

type fileUploadData struct {
	Accounts      []targetOption
	Identities    []userIdentity
	Account       string
	Container     string
	Notifications bool
	SASTTLHours   int
	TTLHours      int
	MaxDelivery   int
	AuthType      string // keyBased, systemAssigned, userAssigned
	Identity      string
}

var isoHours = regexp.MustCompile(`^PT(\d+)H$`)

// hours reads an ISO 8601 duration of whole hours (the portal's unit).
func hours(iso string, def int) int {
	if m := isoHours.FindStringSubmatch(strings.ToUpper(iso)); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return n
		}
	}
	return def
}

func intOf(v any, def int) int {
	if f, ok := v.(float64); ok {
		return int(f)
	}
	return def
}

// fileUpload is Hub → File upload: container, notifications, SAS TTL,
// default TTL, maximum delivery count, authentication type and identity.
// Save shows the hub's own check (e.g. the role the identity lacks).
func (h *Handler) fileUpload(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var actionErr *APIError
	if r.Method == http.MethodPost {
		if err := h.saveFileUpload(ctx, s, ref, r.PostForm); err != nil {
			actionErr = asAPIError(err)
		} else {
			h.done(w, r, s, "Saved the file upload settings.", Prefix+"fileupload?id="+urlQuery(ref.ID))
			return nil
		}
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	props := obj(doc, "properties")
	def := obj(obj(props, "storageEndpoints"), "$default")
	fn := obj(obj(props, "messagingEndpoints"), "fileNotifications")
	d := fileUploadData{
		Container: str(def, "containerName"), SASTTLHours: hours(str(def, "sasTtlAsIso8601"), 1),
		TTLHours: hours(str(fn, "ttlAsIso8601"), 1), MaxDelivery: intOf(fn["maxDeliveryCount"], 10), AuthType: "keyBased",
	}
	d.Notifications, _ = props["enableFileUploadNotifications"].(bool)
	d.Account = parseConnectionString(str(def, "connectionString"))["accountname"]
	if strings.EqualFold(str(def, "authenticationType"), "identityBased") {
		d.AuthType = "systemAssigned"
		if ua := str(obj(def, "identity"), "userAssignedIdentity"); ua != "" {
			d.AuthType, d.Identity = "userAssigned", ua
		}
	}
	targets, err := h.targets(ctx, s)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.Kind == "storageContainers" {
			d.Accounts = append(d.Accounts, t)
		}
	}
	for id := range obj(obj(doc, "identity"), "userAssignedIdentities") {
		d.Identities = append(d.Identities, userIdentity{ID: id, Name: id[strings.LastIndex(id, "/")+1:]})
	}
	if actionErr != nil && r.Method == http.MethodPost {
		// Show what was submitted, not what is stored.
		f := r.PostForm
		d.Account, d.Container, d.AuthType, d.Identity = f.Get("account"), f.Get("container"), f.Get("authenticationType"), f.Get("identity")
		d.Notifications = f.Get("notifications") != ""
	}
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "fileupload", &page{Title: "File upload — " + ref.Name, Session: s, Resource: ref, Blade: "fileupload", Error: actionErr, Data: d})
	return nil
}

func formInt(form url.Values, key string, min, max int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(form.Get(key)))
	if err != nil || n < min || n > max {
		return 0, &APIError{Status: http.StatusBadRequest, Code: "InvalidValue", Message: fmt.Sprintf("%s must be a whole number from %d to %d.", key, min, max)}
	}
	return n, nil
}

func (h *Handler) saveFileUpload(ctx context.Context, s *session, ref *resourceRef, form url.Values) error {
	t, err := h.findTarget(ctx, s, "storageContainers", form.Get("account"))
	if err != nil {
		return err
	}
	container := form.Get("container")
	sasTTL, err := formInt(form, "sasTtlHours", 1, 24)
	if err != nil {
		return err
	}
	ttl, err := formInt(form, "ttlHours", 1, 48)
	if err != nil {
		return err
	}
	maxDelivery, err := formInt(form, "maxDeliveryCount", 1, 100)
	if err != nil {
		return err
	}
	def := map[string]any{"containerName": container, "sasTtlAsIso8601": fmt.Sprintf("PT%dH", sasTTL)}
	switch form.Get("authenticationType") {
	case "keyBased":
		cs, err := h.connectionString(ctx, s, "storageContainers", t)
		if err != nil {
			return err
		}
		def["connectionString"], def["authenticationType"] = cs, "keyBased"
	case "systemAssigned", "userAssigned":
		def["connectionString"] = "DefaultEndpointsProtocol=https;AccountName=" + t.Name + ";EndpointSuffix=" + h.dnsSuffix
		def["authenticationType"] = "identityBased"
		if form.Get("authenticationType") == "userAssigned" {
			if form.Get("identity") == "" {
				return &APIError{Status: http.StatusBadRequest, Code: "NoIdentitySelected", Message: "Select the user-assigned identity file upload authenticates with (associate one on the Identity page first)."}
			}
			def["identity"] = map[string]any{"userAssignedIdentity": form.Get("identity")}
		}
	default:
		return &APIError{Status: http.StatusBadRequest, Code: "NoAuthenticationType", Message: "Choose the authentication type: Key-based, System-assigned or User-assigned."}
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	props := obj(doc, "properties")
	if props == nil {
		props = map[string]any{}
		doc["properties"] = props
	}
	props["storageEndpoints"] = map[string]any{"$default": def}
	fn := obj(obj(props, "messagingEndpoints"), "fileNotifications")
	if fn == nil {
		fn = map[string]any{}
	}
	fn["ttlAsIso8601"], fn["maxDeliveryCount"] = fmt.Sprintf("PT%dH", ttl), maxDelivery
	props["messagingEndpoints"] = map[string]any{"fileNotifications": fn}
	props["enableFileUploadNotifications"] = form.Get("notifications") != ""
	return h.putResource(ctx, s, ref, doc)
}

type networkingData struct {
	PublicAccess string // Enabled, Disabled
	Selected     bool   // default action Deny: only the IP rules (and exceptions) get in
	IPRules      string
	Trusted      bool
	ServiceLabel string
}

// networking is Storage account / namespace → Networking: public network
// access, all or selected networks, IP rules and the "Allow trusted
// Microsoft services" exception.
func (h *Handler) networking(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	if ref.Kind != "storage" && ref.Kind != "messaging" {
		return &APIError{Status: http.StatusNotFound, Code: "NoNetworkingPage", Message: ref.Type + " has no networking settings in the portal."}
	}
	ctx := r.Context()
	var actionErr *APIError
	if r.Method == http.MethodPost {
		if err := h.saveNetworking(ctx, s, ref, r.PostForm); err != nil {
			actionErr = asAPIError(err)
		} else {
			h.done(w, r, s, "Saved the networking settings.", Prefix+"networking?id="+urlQuery(ref.ID))
			return nil
		}
	}
	d := networkingData{ServiceLabel: "this storage account"}
	var rules []string
	if ref.Kind == "storage" {
		doc, _, err := h.getResource(ctx, s, ref)
		if err != nil {
			return err
		}
		props := obj(doc, "properties")
		acls := obj(props, "networkAcls")
		d.PublicAccess = str(props, "publicNetworkAccess")
		d.Selected = strings.EqualFold(str(acls, "defaultAction"), "Deny")
		d.Trusted = strings.Contains(str(acls, "bypass"), "AzureServices")
		ips, _ := acls["ipRules"].([]any)
		for _, ip := range ips {
			m, _ := ip.(map[string]any)
			rules = append(rules, str(m, "value"))
		}
	} else {
		d.ServiceLabel = "this namespace"
		resp, err := h.arm(ctx, s, http.MethodGet, ref.ID+"/networkRuleSets/default", apiVersionFor(ref), nil)
		if err != nil {
			return err
		}
		var set map[string]any
		if err := resp.decode(&set); err != nil {
			return err
		}
		props := obj(set, "properties")
		d.PublicAccess = str(props, "publicNetworkAccess")
		d.Selected = strings.EqualFold(str(props, "defaultAction"), "Deny")
		d.Trusted, _ = props["trustedServiceAccessEnabled"].(bool)
		ips, _ := props["ipRules"].([]any)
		for _, ip := range ips {
			m, _ := ip.(map[string]any)
			rules = append(rules, str(m, "ipMask"))
		}
	}
	if d.PublicAccess == "" {
		d.PublicAccess = "Enabled"
	}
	d.IPRules = strings.Join(rules, "\n")
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "networking", &page{Title: "Networking — " + ref.Name, Session: s, Resource: ref, Blade: "networking", Error: actionErr, Data: d})
	return nil
}

func (h *Handler) saveNetworking(ctx context.Context, s *session, ref *resourceRef, form url.Values) error {
	public, action := "Enabled", "Allow"
	switch form.Get("access") {
	case "all":
	case "selected":
		action = "Deny"
	case "disabled":
		public, action = "Disabled", "Deny"
	default:
		return &APIError{Status: http.StatusBadRequest, Code: "InvalidPublicAccess", Message: "Choose Enabled from all networks, Enabled from selected networks, or Disabled."}
	}
	var ips []string
	for _, line := range strings.Split(form.Get("ipRules"), "\n") {
		if l := strings.TrimSpace(line); l != "" {
			ips = append(ips, l)
		}
	}
	trusted := form.Get("trusted") != ""
	if ref.Kind == "storage" {
		rules := []map[string]string{}
		for _, ip := range ips {
			rules = append(rules, map[string]string{"value": ip, "action": "Allow"})
		}
		bypass := "None"
		if trusted {
			bypass = "AzureServices"
		}
		patch := map[string]any{"properties": map[string]any{"publicNetworkAccess": public,
			"networkAcls": map[string]any{"defaultAction": action, "bypass": bypass, "ipRules": rules}}}
		_, err := h.arm(ctx, s, http.MethodPatch, ref.ID, apiVersionFor(ref), patch)
		return err
	}
	rules := []map[string]string{}
	for _, ip := range ips {
		rules = append(rules, map[string]string{"ipMask": ip, "action": "Allow"})
	}
	body := map[string]any{"properties": map[string]any{"publicNetworkAccess": public, "defaultAction": action,
		"trustedServiceAccessEnabled": trusted, "ipRules": rules, "virtualNetworkRules": []any{}}}
	_, err := h.arm(ctx, s, http.MethodPut, ref.ID+"/networkRuleSets/default", apiVersionFor(ref), body)
	return err
}
