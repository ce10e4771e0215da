package portal

import (
	"context"
	"net/http"
	"sort"
	"strings"
)

// userIdentity is a user-assigned identity as the pickers show it.
type userIdentity struct {
	ID, Name, Group, PrincipalID, ClientID string
}

type identityData struct {
	Tab           string
	SystemOn      bool
	PrincipalID   string
	Assigned      []userIdentity
	Available     []userIdentity // user-assigned identities not yet associated
	AssignedCount int
}

// getResource reads a resource and its ETag.
func (h *Handler) getResource(ctx context.Context, s *session, ref *resourceRef) (map[string]any, string, error) {
	resp, err := h.arm(ctx, s, http.MethodGet, ref.ID, apiVersionFor(ref), nil)
	if err != nil {
		return nil, "", err
	}
	var doc map[string]any
	if err := resp.decode(&doc); err != nil {
		return nil, "", err
	}
	return doc, resp.header.Get("ETag"), nil
}

// putResource writes doc back (the whole resource, as the Azure portal's
// blades do) and waits for a long-running operation to end.
func (h *Handler) putResource(ctx context.Context, s *session, ref *resourceRef, doc map[string]any) error {
	_, err := h.arm(ctx, s, http.MethodPut, ref.ID, apiVersionFor(ref), doc)
	return err
}

// userIdentities lists the subscription's user-assigned identities.
func (h *Handler) userIdentities(ctx context.Context, s *session) ([]userIdentity, error) {
	// The type's own list: the generic resources list carries no
	// properties (as in ARM), and the principal id is one.
	items, err := h.list(ctx, s, "/subscriptions/"+h.subscriptionID+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities", msiAPI)
	if err != nil {
		return nil, err
	}
	out := make([]userIdentity, 0, len(items))
	for _, it := range items {
		props := obj(it, "properties")
		u := userIdentity{ID: str(it, "id"), Name: str(it, "name"), PrincipalID: str(props, "principalId"), ClientID: str(props, "clientId")}
		if ref, err := parseRef(u.ID); err == nil {
			u.Group = ref.Group
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}

// identityBlade is Hub → Security settings → Identity: the System-assigned
// tab (Status On/Off, Save) and the User-assigned tab (Associate, Remove).
func (h *Handler) identityBlade(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	tab := r.FormValue("tab")
	if tab != "user" {
		tab = "system"
	}
	var actionErr *APIError
	if r.Method == http.MethodPost {
		err := h.changeIdentity(ctx, s, ref, r)
		if err == nil {
			to := Prefix + "identity?id=" + urlQuery(ref.ID) + "&tab=" + tab
			h.done(w, r, s, "Saved the identity settings of "+ref.Name+".", to)
			return nil
		}
		actionErr = asAPIError(err)
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	d := identityData{Tab: tab}
	block := obj(doc, "identity")
	typ := str(block, "type")
	d.SystemOn = strings.HasPrefix(typ, "SystemAssigned")
	d.PrincipalID = str(block, "principalId")
	assigned := obj(block, "userAssignedIdentities")
	all, err := h.userIdentities(ctx, s)
	if err != nil {
		return err
	}
	for _, u := range all {
		if _, ok := lookupFold(assigned, u.ID); ok {
			d.Assigned = append(d.Assigned, u)
		} else {
			d.Available = append(d.Available, u)
		}
	}
	// Identities the hub names that the signed-in principal cannot list.
	for id, v := range assigned {
		if !containsID(d.Assigned, id) {
			m, _ := v.(map[string]any)
			d.Assigned = append(d.Assigned, userIdentity{ID: id, Name: id[strings.LastIndex(id, "/")+1:], PrincipalID: str(m, "principalId"), ClientID: str(m, "clientId")})
		}
	}
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "identity", &page{Title: "Identity — " + ref.Name, Session: s, Resource: ref, Blade: "identity", Error: actionErr, Data: d})
	return nil
}

func containsID(list []userIdentity, id string) bool {
	for _, u := range list {
		if strings.EqualFold(u.ID, id) {
			return true
		}
	}
	return false
}

func lookupFold(m map[string]any, key string) (any, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// changeIdentity applies one form of the Identity blade: the System-assigned
// status, or associating / removing a user-assigned identity. Removing only
// detaches the identity; the identity resource stays.
func (h *Handler) changeIdentity(ctx context.Context, s *session, ref *resourceRef, r *http.Request) error {
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	block := obj(doc, "identity")
	typ := str(block, "type")
	system := strings.HasPrefix(typ, "SystemAssigned")
	user := map[string]any{}
	for id := range obj(block, "userAssignedIdentities") {
		user[id] = map[string]any{}
	}
	switch r.PostFormValue("action") {
	case "system":
		switch r.PostFormValue("status") {
		case "on":
			system = true
		case "off":
			system = false
		default:
			return &APIError{Status: http.StatusBadRequest, Code: "InvalidStatus", Message: "Choose On or Off for the system-assigned identity."}
		}
	case "associate":
		id := strings.TrimSpace(r.PostFormValue("identity"))
		if id == "" {
			return &APIError{Status: http.StatusBadRequest, Code: "NoIdentitySelected", Message: "Choose the user-assigned managed identity to associate."}
		}
		user[id] = map[string]any{}
	case "remove":
		id := r.PostFormValue("identity")
		k, ok := lookupKeyFold(user, id)
		if !ok {
			return &APIError{Status: http.StatusBadRequest, Code: "IdentityNotAssociated", Message: "'" + id + "' is not associated with " + ref.Name + "."}
		}
		delete(user, k)
	default:
		return &APIError{Status: http.StatusBadRequest, Code: "UnknownAction", Message: "The form asked for no known change."}
	}
	next := map[string]any{}
	switch {
	case system && len(user) > 0:
		next["type"] = "SystemAssigned, UserAssigned"
	case system:
		next["type"] = "SystemAssigned"
	case len(user) > 0:
		next["type"] = "UserAssigned"
	default:
		next["type"] = "None"
	}
	if len(user) > 0 {
		next["userAssignedIdentities"] = user
	}
	doc["identity"] = next
	return h.putResource(ctx, s, ref, doc)
}

func lookupKeyFold(m map[string]any, key string) (string, bool) {
	for k := range m {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}
