package portal

import (
	"net/http"
	"sort"
	"strings"
)

type identitiesData struct {
	UserAssigned []userIdentity
	System       []memberView
}

// identities lists the subscription's managed identities: user-assigned
// ones (resources of their own) and every resource's system-assigned one.
func (h *Handler) identities(w http.ResponseWriter, r *http.Request, s *session) error {
	if r.Method == http.MethodPost {
		return &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "The identities list has no changes to post."}
	}
	ctx := r.Context()
	ua, err := h.userIdentities(ctx, s)
	if err != nil {
		return err
	}
	_, system, err := h.members(ctx, s)
	if err != nil {
		return err
	}
	h.render(w, http.StatusOK, "identities", &page{Title: "Managed identities", Session: s, Data: identitiesData{UserAssigned: ua, System: system}})
	return nil
}

type deploymentView struct {
	Name, State, Timestamp, Error string
}

type operationView struct {
	Resource, Type, State, Status, Timestamp string
}

type deploymentsData struct {
	Deployments []deploymentView
	Selected    string
	Operations  []operationView
}

// deployments is Resource group → Deployments: each template deployment's
// state, and for one of them the state of each resource operation.
func (h *Handler) deployments(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	if ref.Kind != "group" {
		return &APIError{Status: http.StatusNotFound, Code: "NoDeploymentsPage", Message: "Deployments are listed on a resource group's page."}
	}
	if r.Method == http.MethodPost {
		return &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "The deployments list has no changes to post."}
	}
	ctx := r.Context()
	base := ref.ID + "/providers/Microsoft.Resources/deployments"
	items, err := h.list(ctx, s, base, resourcesAPI)
	if err != nil {
		return err
	}
	d := deploymentsData{Selected: r.URL.Query().Get("deployment")}
	for _, it := range items {
		p := obj(it, "properties")
		v := deploymentView{Name: str(it, "name"), State: str(p, "provisioningState"), Timestamp: str(p, "timestamp")}
		if e := obj(p, "error"); e != nil {
			v.Error = str(e, "code") + ": " + str(e, "message")
		}
		d.Deployments = append(d.Deployments, v)
	}
	sort.Slice(d.Deployments, func(i, j int) bool { return d.Deployments[i].Timestamp > d.Deployments[j].Timestamp })
	if d.Selected != "" {
		ops, err := h.list(ctx, s, base+"/"+d.Selected+"/operations", resourcesAPI)
		if err != nil {
			return err
		}
		for _, op := range ops {
			p := obj(op, "properties")
			target := obj(p, "targetResource")
			v := operationView{Resource: str(target, "resourceName"), Type: str(target, "resourceType"),
				State: str(p, "provisioningState"), Timestamp: str(p, "timestamp")}
			if st := p["statusMessage"]; st != nil {
				if m, ok := st.(map[string]any); ok {
					if e := obj(m, "error"); e != nil {
						v.Status = str(e, "code") + ": " + str(e, "message")
					}
				} else if s, ok := st.(string); ok {
					v.Status = s
				}
			}
			d.Operations = append(d.Operations, v)
		}
	}
	h.render(w, http.StatusOK, "deployments", &page{Title: "Deployments — " + ref.Name, Session: s, Resource: ref, Blade: "deployments", Data: d})
	return nil
}

// groups lists the subscription's resource groups for the home page.
func (h *Handler) groups(r *http.Request, s *session) ([]resourceRow, error) {
	items, err := h.list(r.Context(), s, "/subscriptions/"+h.subscriptionID+"/resourcegroups", resourcesAPI)
	if err != nil {
		return nil, err
	}
	out := make([]resourceRow, 0, len(items))
	for _, it := range items {
		out = append(out, resourceRow{ID: str(it, "id"), Name: str(it, "name"), Location: str(it, "location")})
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}
