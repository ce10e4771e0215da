package cli

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// newIdentityCommand is `outpost identity create|show|list|delete`: user-assigned
// managed identities, shaped like `az identity`.
func newIdentityCommand() *cobra.Command {
	id := &cobra.Command{Use: "identity", Short: "User-assigned managed identities (az identity shaped)"}
	var name, rg, location string
	var tags []string
	const typ = "Microsoft.ManagedIdentity/userAssignedIdentities"
	model := []string{"id", "name", "type", "location", "tags", "tenantId", "principalId", "clientId"}
	// view is the SDK model az prints: tenantId, principalId and clientId
	// lifted out of properties, the rest of properties dropped.
	view := func(v any) any {
		for _, it := range asList(v) {
			if m, ok := it.(map[string]any); ok {
				p, _ := m["properties"].(map[string]any)
				for _, k := range []string{"tenantId", "principalId", "clientId"} {
					m[k] = p[k]
				}
				delete(m, "properties")
			}
		}
		return v
	}

	create := &cobra.Command{
		Use: "create --name NAME --resource-group RG [--location L] [--tags k=v …]", Short: "Create a user-assigned identity", Args: tagWords,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			t, err := parseTags(append(tags, args...))
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			if location == "" { // az defaults to the group's location
				g, err := c.getJSON(cmd.Context(), c.groupPath(rg), apiResources)
				if err != nil {
					return err
				}
				location, _ = g["location"].(string)
			}
			body := map[string]any{"location": location}
			if t != nil {
				body["tags"] = t
			}
			out, err := c.put(cmd.Context(), http.MethodPut, c.resourcePath(rg, typ, name), apiIdentity, body, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emitModel(cmd, view(out), nil, model)
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "identity name")
	create.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	create.Flags().StringVarP(&location, "location", "l", "", "location (default: the group's)")
	create.Flags().StringSliceVar(&tags, "tags", nil, "space-separated tags: key[=value]")

	show := &cobra.Command{
		Use: "show --name NAME --resource-group RG", Short: "Show a user-assigned identity", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.getJSON(cmd.Context(), c.resourcePath(rg, typ, name), apiIdentity)
			if err != nil {
				return err
			}
			return emitModel(cmd, view(out), nil, model)
		},
	}
	show.Flags().StringVarP(&name, "name", "n", "", "identity name")
	show.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")

	list := &cobra.Command{
		Use: "list [--resource-group RG]", Short: "List user-assigned identities", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			all, err := c.listOfType(cmd.Context(), rg, typ, apiIdentity)
			if err != nil {
				return err
			}
			return emitModel(cmd, view(all), nil, model)
		},
	}
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")

	del := &cobra.Command{
		Use: "delete --name NAME --resource-group RG", Short: "Delete a user-assigned identity", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return c.remove(cmd.Context(), c.resourcePath(rg, typ, name), apiIdentity, cmd.ErrOrStderr())
		},
	}
	del.Flags().StringVarP(&name, "name", "n", "", "identity name")
	del.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")

	id.AddCommand(create, show, list, del)
	return id
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// newRoleCommand is `outpost role assignment create|list|delete` and `role
// definition list`, shaped like az's.
func newRoleCommand() *cobra.Command {
	role := &cobra.Command{Use: "role", Short: "Role-based access control (az role shaped)"}
	assignment := &cobra.Command{Use: "assignment", Short: "Role assignments"}
	definition := &cobra.Command{Use: "definition", Short: "Role definitions"}
	role.AddCommand(assignment, definition)

	var assignee, objectID, principalType, roleName, scope, rg, description string
	var all bool
	var ids []string
	scopeOf := func(c *apiClient) string {
		switch {
		case scope != "":
			return "/" + strings.Trim(scope, "/")
		case rg != "":
			return c.groupPath(rg)
		}
		return c.subscriptionPath()
	}

	create := &cobra.Command{
		Use:   "create --role ROLE (--assignee ID | --assignee-object-id ID [--assignee-principal-type T]) [--scope SCOPE | --resource-group RG]",
		Short: "Grant a principal a role at a scope", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "role"); err != nil {
				return err
			}
			principal := objectID
			if principal == "" {
				principal = assignee
			}
			if principal == "" {
				return usageErrorf("name the principal with --assignee-object-id (or --assignee with an object id) (see '%s --help')", cmd.CommandPath())
			}
			if !guidPattern.MatchString(principal) {
				return usageErrorf("--assignee %q: give the principal's object id (a GUID); Outpost has no Graph directory to look names up in", principal)
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			at := scopeOf(c)
			defID, err := c.roleDefinitionID(cmd, at, roleName)
			if err != nil {
				return err
			}
			props := map[string]any{"roleDefinitionId": defID, "principalId": principal}
			if principalType != "" {
				props["principalType"] = principalType
			}
			if description != "" {
				props["description"] = description
			}
			out, err := c.put(cmd.Context(), http.MethodPut, at+"/providers/Microsoft.Authorization/roleAssignments/"+newGUID(),
				apiAuthz, map[string]any{"properties": props}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emit(cmd, flattenAssignment(out), nil)
		},
	}
	create.Flags().StringVar(&roleName, "role", "", "role name (e.g. \"Storage Blob Data Contributor\"), or its GUID or id")
	create.Flags().StringVar(&assignee, "assignee", "", "the principal's object id")
	create.Flags().StringVar(&objectID, "assignee-object-id", "", "the principal's object id")
	create.Flags().StringVar(&principalType, "assignee-principal-type", "", "User, Group or ServicePrincipal (managed identities are ServicePrincipal)")
	create.Flags().StringVar(&scope, "scope", "", "scope: a resource id, group or subscription (default: the subscription)")
	create.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group as the scope")
	create.Flags().StringVar(&description, "description", "", "description of the assignment")

	list := &cobra.Command{
		Use: "list [--scope SCOPE | --resource-group RG | --all] [--assignee ID] [--role ROLE]", Short: "List role assignments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			at := scopeOf(c)
			filter := "atScope()"
			if all {
				at, filter = c.subscriptionPath(), ""
			}
			if assignee != "" {
				filter = "principalId eq '" + assignee + "'"
			}
			p := at + "/providers/Microsoft.Authorization/roleAssignments"
			if filter != "" {
				p += "?$filter=" + url.QueryEscape(filter)
			}
			items, err := c.list(cmd.Context(), p, apiAuthz)
			if err != nil {
				return err
			}
			names, err := c.roleNames(cmd, at)
			if err != nil {
				return err
			}
			out := []any{}
			for _, it := range items {
				a := flattenAssignment(it.(map[string]any))
				a["roleDefinitionName"] = names[strings.ToLower(lastSegment(fmt.Sprint(a["roleDefinitionId"])))]
				if roleName != "" && !strings.EqualFold(fmt.Sprint(a["roleDefinitionName"]), roleName) &&
					!strings.EqualFold(lastSegment(fmt.Sprint(a["roleDefinitionId"])), lastSegment(roleName)) {
					continue
				}
				out = append(out, a)
			}
			return emit(cmd, out, assignmentTable)
		},
	}
	list.Flags().StringVar(&scope, "scope", "", "scope: a resource id, group or subscription")
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group as the scope")
	list.Flags().BoolVar(&all, "all", false, "every assignment in the subscription, at any scope")
	list.Flags().StringVar(&assignee, "assignee", "", "only this principal's (object id)")
	list.Flags().StringVar(&roleName, "role", "", "only this role (name or GUID)")

	del := &cobra.Command{
		Use: "delete --ids ID… | --assignee ID --role ROLE [--scope SCOPE]", Short: "Remove role assignments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			targets := ids
			if len(targets) == 0 {
				if assignee == "" || roleName == "" {
					return usageErrorf("name the assignments with --ids, or with --assignee and --role (see '%s --help')", cmd.CommandPath())
				}
				at := scopeOf(c)
				defID, err := c.roleDefinitionID(cmd, at, roleName)
				if err != nil {
					return err
				}
				items, err := c.list(cmd.Context(), at+"/providers/Microsoft.Authorization/roleAssignments?$filter="+
					url.QueryEscape("principalId eq '"+assignee+"'"), apiAuthz)
				if err != nil {
					return err
				}
				for _, it := range items {
					a := flattenAssignment(it.(map[string]any))
					if strings.EqualFold(lastSegment(fmt.Sprint(a["roleDefinitionId"])), lastSegment(defID)) &&
						strings.EqualFold(strings.TrimRight(fmt.Sprint(a["scope"]), "/"), at) {
						targets = append(targets, fmt.Sprint(a["id"]))
					}
				}
				if len(targets) == 0 {
					return &apiError{Status: http.StatusNotFound, Code: "RoleAssignmentNotFound",
						Message: fmt.Sprintf("no assignment of %q to %s at %s", roleName, assignee, at)}
				}
			}
			for _, id := range targets {
				if err := c.remove(cmd.Context(), id, apiAuthz, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	del.Flags().StringSliceVar(&ids, "ids", nil, "role assignment ids")
	del.Flags().StringVar(&assignee, "assignee", "", "the principal's object id")
	del.Flags().StringVar(&roleName, "role", "", "role name or GUID")
	del.Flags().StringVar(&scope, "scope", "", "scope of the assignment")
	del.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group as the scope")

	var defName string
	var custom bool
	dlist := &cobra.Command{
		Use: "list [--name ROLE] [--custom-role-only] [--scope SCOPE]", Short: "List role definitions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var filters []string
			if defName != "" {
				filters = append(filters, "roleName eq '"+defName+"'")
			}
			if custom {
				filters = append(filters, "type eq 'CustomRole'")
			}
			p := scopeOf(c) + "/providers/Microsoft.Authorization/roleDefinitions"
			if len(filters) > 0 {
				p += "?$filter=" + url.QueryEscape(strings.Join(filters, " and "))
			}
			items, err := c.list(cmd.Context(), p, apiAuthz)
			if err != nil {
				return err
			}
			out := make([]any, 0, len(items))
			for _, it := range items {
				out = append(out, flattenAssignment(it.(map[string]any)))
			}
			return emit(cmd, out, definitionTable)
		},
	}
	dlist.Flags().StringVarP(&defName, "name", "n", "", "role name")
	dlist.Flags().BoolVar(&custom, "custom-role-only", false, "only custom roles")
	dlist.Flags().StringVar(&scope, "scope", "", "scope")
	dlist.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group as the scope")

	assignment.AddCommand(create, list, del)
	definition.AddCommand(dlist)
	return role
}

// flattenAssignment lifts properties to the top level, as az prints role
// assignments and definitions (its SDK models flatten them, naming a
// definition's properties.type roleType).
func flattenAssignment(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "properties" {
			out[k] = v
		}
	}
	if p, ok := m["properties"].(map[string]any); ok {
		for k, v := range p {
			if k == "type" { // a definition's BuiltInRole/CustomRole: the SDK's roleType
				k = "roleType"
			}
			out[k] = v
		}
	}
	return out
}

// roleDefinitionID resolves a role name, GUID or id to the definition's id
// at scope.
func (c *apiClient) roleDefinitionID(cmd *cobra.Command, scope, role string) (string, error) {
	if strings.Contains(role, "/") {
		return role, nil
	}
	if guidPattern.MatchString(role) {
		return c.subscriptionPath() + "/providers/Microsoft.Authorization/roleDefinitions/" + role, nil
	}
	items, err := c.list(cmd.Context(), scope+"/providers/Microsoft.Authorization/roleDefinitions?$filter="+
		url.QueryEscape("roleName eq '"+role+"'"), apiAuthz)
	if err != nil {
		return "", err
	}
	if len(items) == 0 {
		return "", &apiError{Status: http.StatusNotFound, Code: "RoleDefinitionNotFound",
			Message: fmt.Sprintf("role %q doesn't exist; `outpost role definition list -o table` lists the roles", role)}
	}
	id, _ := items[0].(map[string]any)["id"].(string)
	return id, nil
}

// roleNames maps each role definition GUID (lower case) visible at scope to
// its name.
func (c *apiClient) roleNames(cmd *cobra.Command, scope string) (map[string]string, error) {
	items, err := c.list(cmd.Context(), scope+"/providers/Microsoft.Authorization/roleDefinitions", apiAuthz)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		names[strings.ToLower(lastSegment(fmt.Sprint(m["id"])))] = fmt.Sprint(dig(m, "properties", "roleName"))
	}
	return names, nil
}

// assignmentTable is az's transform_assignment_list; Outpost has no Graph
// directory, so the principal is named by its object id.
func assignmentTable(v any) []orderedRow {
	var rows []orderedRow
	for _, r := range asList(v) {
		m, _ := r.(map[string]any)
		principal := m["principalName"]
		if principal == nil {
			principal = m["principalId"]
		}
		rows = append(rows, orderedRow{{"Principal", principal}, {"Role", m["roleDefinitionName"]}, {"Scope", m["scope"]}})
	}
	return rows
}

// definitionTable is az's transform_definition_list.
func definitionTable(v any) []orderedRow {
	var rows []orderedRow
	for _, r := range asList(v) {
		m, _ := r.(map[string]any)
		rows = append(rows, orderedRow{{"Name", m["roleName"]}, {"Type", m["type"]}, {"Description", m["description"]}})
	}
	return rows
}

func lastSegment(id string) string {
	return id[strings.LastIndex(id, "/")+1:]
}

// newGUID is a random version-4 GUID, as az picks for an assignment's name.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
