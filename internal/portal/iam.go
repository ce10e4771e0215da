package portal

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
)

// roleView is a role definition as the Role tab shows it.
type roleView struct {
	ID, Name, Description, Type string
}

// memberView is a principal as the IAM pages show it.
type memberView struct {
	PrincipalID string
	Name        string // the identity's or its resource's name
	Kind        string // "User-assigned managed identity", "System-assigned managed identity", "Service principal"
	ResourceID  string // the identity resource, or the resource a system identity belongs to
	Type        string // the resource's type (system-assigned)
}

// assignmentDoc is the part of a role assignment the IAM page reads.
type assignmentDoc struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		RoleDefinitionID string `json:"roleDefinitionId"`
		Scope            string `json:"scope"`
	} `json:"properties"`
}

type assignmentView struct {
	ID, Name, RoleName, Scope string
	Member                    memberView
	Inherited                 bool
}

type iamData struct {
	Adding       bool
	Assignments  []assignmentView
	Roles        []roleView
	UserAssigned []memberView
	SystemByRes  []memberView
	Subscription string
	// the selections carried to the review step
	RoleID, MemberType, UserIdentity, SystemIdentity string
	Review                                           *iamReview
}

type iamReview struct {
	Role   roleView
	Member memberView
	Scope  string
}

// identityTypes are the resource types that can have a system-assigned
// identity.
var identityTypes = []string{"Microsoft.Devices/IotHubs", "Microsoft.Storage/storageAccounts", "Microsoft.EventHub/namespaces", "Microsoft.ServiceBus/namespaces"}

// members lists the managed identities a role can be given to: the
// subscription's user-assigned identities and every resource's
// system-assigned identity.
func (h *Handler) members(ctx context.Context, s *session) (user, system []memberView, err error) {
	// Only these types carry an identity block in Outpost; listing them by
	// type reads far less than the whole subscription.
	var items []map[string]any
	for _, typ := range identityTypes {
		l, err := h.list(ctx, s, "/subscriptions/"+h.subscriptionID+"/resources?$filter=resourceType eq '"+typ+"'", resourcesAPI)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, l...)
	}
	uas, err := h.userIdentities(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range uas {
		if u.PrincipalID != "" {
			user = append(user, memberView{PrincipalID: u.PrincipalID, Name: u.Name, Kind: "User-assigned managed identity", ResourceID: u.ID,
				Type: "Microsoft.ManagedIdentity/userAssignedIdentities"})
		}
	}
	for _, it := range items {
		id, name, typ := str(it, "id"), str(it, "name"), str(it, "type")
		block := obj(it, "identity")
		if pid := str(block, "principalId"); pid != "" && strings.HasPrefix(str(block, "type"), "SystemAssigned") {
			system = append(system, memberView{PrincipalID: pid, Name: name, Kind: "System-assigned managed identity", ResourceID: id, Type: typ})
		}
	}
	byName := func(l []memberView) {
		sort.Slice(l, func(i, j int) bool { return strings.ToLower(l[i].Name) < strings.ToLower(l[j].Name) })
	}
	byName(user)
	byName(system)
	return user, system, nil
}

func (h *Handler) roles(ctx context.Context, s *session, scope string) ([]roleView, error) {
	items, err := h.list(ctx, s, scope+"/providers/Microsoft.Authorization/roleDefinitions", authAPI)
	if err != nil {
		return nil, err
	}
	out := make([]roleView, 0, len(items))
	for _, it := range items {
		p := obj(it, "properties")
		out = append(out, roleView{ID: str(it, "id"), Name: str(p, "roleName"), Description: str(p, "description"), Type: str(p, "type")})
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}

// iam is Access control (IAM) for any scope: the role assignments that
// apply, Add role assignment (Role, Members, Review + assign) and Remove.
func (h *Handler) iam(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	d := iamData{Subscription: h.subscriptionID, Adding: r.FormValue("add") != ""}
	var actionErr *APIError
	if r.Method == http.MethodPost {
		d.RoleID, d.MemberType = r.PostFormValue("role"), r.PostFormValue("memberType")
		d.UserIdentity, d.SystemIdentity = r.PostFormValue("userIdentity"), r.PostFormValue("systemIdentity")
		switch r.PostFormValue("action") {
		case "remove":
			id := r.PostFormValue("assignment")
			if _, err := h.arm(ctx, s, http.MethodDelete, id, authAPI, nil); err != nil {
				actionErr = asAPIError(err)
				break
			}
			h.done(w, r, s, "Removed the role assignment.", Prefix+"iam?id="+urlQuery(ref.ID))
			return nil
		case "review", "assign":
			rev, err := h.review(ctx, s, ref, d)
			if err != nil {
				actionErr = asAPIError(err)
				d.Adding = true
				break
			}
			if r.PostFormValue("action") == "review" {
				d.Review = rev
				h.render(w, http.StatusOK, "iamreview", &page{Title: "Review + assign — " + ref.Name, Session: s, Resource: ref, Blade: "iam", Data: d})
				return nil
			}
			body := map[string]any{"properties": map[string]any{
				"roleDefinitionId": rev.Role.ID, "principalId": rev.Member.PrincipalID, "principalType": "ServicePrincipal",
			}}
			path := ref.ID + "/providers/Microsoft.Authorization/roleAssignments/" + newGUID()
			if _, err := h.arm(ctx, s, http.MethodPut, path, authAPI, body); err != nil {
				actionErr = asAPIError(err)
				d.Review = rev
				h.render(w, actionErr.Status, "iamreview", &page{Title: "Review + assign — " + ref.Name, Session: s, Resource: ref, Blade: "iam", Error: actionErr, Data: d})
				return nil
			}
			h.done(w, r, s, fmt.Sprintf("Assigned %s to %s.", rev.Role.Name, rev.Member.Name), Prefix+"iam?id="+urlQuery(ref.ID))
			return nil
		default:
			actionErr = &APIError{Status: http.StatusBadRequest, Code: "UnknownAction", Message: "The form asked for no known change."}
		}
	}
	// Three independent reads; the role assignment list is the slow one
	// (see docs/benchmarks.md), so the others run beside it.
	var (
		roles []roleView
		items []assignmentDoc
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { roles, err = h.roles(gctx, s, ref.ID); return err })
	g.Go(func() (err error) { d.UserAssigned, d.SystemByRes, err = h.members(gctx, s); return err })
	g.Go(func() (err error) {
		items, err = listAs[assignmentDoc](gctx, h, s, ref.ID+"/providers/Microsoft.Authorization/roleAssignments", authAPI)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	d.Roles = roles
	names := map[string]memberView{}
	for _, m := range append(append([]memberView{}, d.UserAssigned...), d.SystemByRes...) {
		names[strings.ToLower(m.PrincipalID)] = m
	}
	roleNames := map[string]string{}
	for _, rv := range roles {
		roleNames[strings.ToLower(rv.ID[strings.LastIndex(rv.ID, "/")+1:])] = rv.Name
	}
	for _, it := range items {
		p := it.Properties
		pid := p.PrincipalID
		m, ok := names[strings.ToLower(pid)]
		if !ok {
			m = memberView{PrincipalID: pid, Name: pid, Kind: p.PrincipalType}
			if pid == s.objectID {
				m.Name = s.name + " (you)"
			}
		}
		rd := p.RoleDefinitionID
		scope := p.Scope
		a := assignmentView{ID: it.ID, Name: it.Name, Scope: scope, Member: m,
			RoleName:  roleNames[strings.ToLower(rd[strings.LastIndex(rd, "/")+1:])],
			Inherited: !strings.EqualFold(strings.TrimRight(scope, "/"), strings.TrimRight(ref.ID, "/"))}
		if a.RoleName == "" {
			a.RoleName = rd
		}
		d.Assignments = append(d.Assignments, a)
	}
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "iam", &page{Title: "Access control (IAM) — " + ref.Name, Session: s, Resource: ref, Blade: "iam", Error: actionErr, Data: d})
	return nil
}

// review resolves the Role and Members tabs' choices.
func (h *Handler) review(ctx context.Context, s *session, ref *resourceRef, d iamData) (*iamReview, error) {
	if d.RoleID == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "NoRoleSelected", Message: "On the Role tab, select a role."}
	}
	roles, err := h.roles(ctx, s, ref.ID)
	if err != nil {
		return nil, err
	}
	rev := &iamReview{Scope: ref.ID}
	for _, rv := range roles {
		if strings.EqualFold(rv.ID, d.RoleID) {
			rev.Role = rv
		}
	}
	if rev.Role.ID == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "RoleDefinitionDoesNotExist", Message: "The selected role is not assignable here."}
	}
	user, system, err := h.members(ctx, s)
	if err != nil {
		return nil, err
	}
	want, list := d.UserIdentity, user
	if d.MemberType == "system" {
		want, list = d.SystemIdentity, system
	} else if d.MemberType != "user" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "NoMemberSelected", Message: "On the Members tab, choose User-assigned managed identity or All system-assigned managed identities."}
	}
	for _, m := range list {
		if want != "" && strings.EqualFold(m.PrincipalID, want) {
			rev.Member = m
		}
	}
	if rev.Member.PrincipalID == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "NoMemberSelected", Message: "On the Members tab, select the managed identity to assign the role to."}
	}
	return rev, nil
}

// newGUID is a random (version 4) GUID, the name of a new role assignment.
func newGUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("portal: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
