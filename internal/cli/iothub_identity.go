package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// newHubIdentityCommand is `outpost iot hub identity assign|remove|show`:
// each prints the hub's identity block, as az does.
func newHubIdentityCommand() *cobra.Command {
	group := &cobra.Command{Use: "identity", Short: "Managed identities of an IoT hub"}
	group.AddCommand(newHubIdentityAssignCommand(), newHubIdentityRemoveCommand(), newHubIdentityShowCommand())
	return group
}

func newHubIdentityAssignCommand() *cobra.Command {
	var (
		h      hubRef
		role   string
		system *triState
		users  *list
		scopes *list
	)
	cmd := &cobra.Command{
		Use:   "assign --name NAME [--system-assigned] [--user-assigned ID …] [--role ROLE --scopes SCOPE …]",
		Short: "Add managed identities to an IoT hub (az iot hub identity assign)",
		Long: "Adds the system-assigned identity and/or user-assigned identities, keeping the ones the hub has.\n" +
			"With --role and --scopes, the system-assigned identity is given the role at each scope.",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "name")
	h.idsFlag(cmd)
	system = a.triStateFlag(cmd, "system-assigned", "", "assign the system-assigned identity", "system")
	users = a.listFlag(cmd, "user-assigned", "", "user-assigned identities' resource `IDs`", "user")
	cmd.Flags().StringVar(&role, "role", "", "role (name or id) to give the system-assigned identity at --scopes")
	scopes = a.listFlag(cmd, "scopes", "", "`SCOPES` to give the system-assigned identity --role at")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := h.resolve(cmd); err != nil {
			return err
		}
		if (role == "") != (len(scopes.values()) == 0) {
			return usageErrorf("At least one scope (--scopes) and one role (--role) required for system-managed identity role assignment.")
		}
		wantSystem := system.set && system.val
		if !wantSystem && len(users.values()) == 0 {
			return usageErrorf("No identities provided to assign. Please provide system (--system) or user-assigned identities (--user).")
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		ident := obj(hub, "identity")
		uai, _ := ident["userAssignedIdentities"].(map[string]any)
		for _, id := range users.values() {
			if uai == nil {
				uai = map[string]any{}
			}
			if k := identityKey(uai, id); k == "" {
				uai[id] = map[string]any{}
			}
		}
		if len(uai) > 0 {
			ident["userAssignedIdentities"] = uai
		}
		typ := str(ident, "type")
		hasSystem := typ == identitySystem || typ == identitySystemUser
		switch {
		case (wantSystem || hasSystem) && len(uai) > 0:
			ident["type"] = identitySystemUser
		case wantSystem || hasSystem:
			ident["type"] = identitySystem
		case len(uai) > 0:
			ident["type"] = identityUser
		default:
			ident["type"] = identityNone
		}
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		if role != "" {
			principal := str(obj(out, "identity"), "principalId")
			if principal == "" {
				return errors.New("the hub has no system-assigned identity to give --role to; add --system-assigned")
			}
			for _, scope := range scopes.values() {
				if err := assignRoleTo(cmd, c, principal, role, scope); err != nil {
					return err
				}
			}
		}
		return emitModel(cmd, out["identity"], nil, identityModel)
	}
	return cmd
}

// identityKey finds a user-assigned identity's key in the hub's map;
// resource ids compare without regard to case.
func identityKey(uai map[string]any, id string) string {
	for k := range uai {
		if strings.EqualFold(k, id) {
			return k
		}
	}
	return ""
}

func newHubIdentityRemoveCommand() *cobra.Command {
	var (
		h      hubRef
		system *triState
		users  *list
	)
	cmd := &cobra.Command{
		Use:   "remove --name NAME [--system-assigned] [--user-assigned [ID …]]",
		Short: "Remove managed identities from an IoT hub (az iot hub identity remove)",
		Long:  "--user-assigned without ids removes every user-assigned identity.",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "name")
	h.idsFlag(cmd)
	system = a.triStateFlag(cmd, "system-assigned", "", "remove the system-assigned identity", "system")
	users = a.listFlag(cmd, "user-assigned", "", "user-assigned identities' resource `IDs` (none: all of them)", "user")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := h.resolve(cmd); err != nil {
			return err
		}
		removeSystem := system.set && system.val
		if !removeSystem && !users.given {
			return usageErrorf("No identities provided to remove. Please provide system (--system) or user-assigned identities (--user).")
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		ident := obj(hub, "identity")
		typ := str(ident, "type")
		hasSystem := typ == identitySystem || typ == identitySystemUser
		if removeSystem {
			if !hasSystem {
				return usageErrorf("Hub %s is not currently using a system-assigned identity", h.name)
			}
			hasSystem = false
		}
		uai, _ := ident["userAssignedIdentities"].(map[string]any)
		if ids := users.values(); len(ids) > 0 {
			for _, id := range ids {
				k := identityKey(uai, id)
				if k == "" {
					return usageErrorf("Hub %s is not currently using a user-assigned identity with id: %s", h.name, id)
				}
				delete(uai, k)
			}
		} else if users.given {
			uai = nil
		}
		switch {
		case hasSystem && len(uai) > 0:
			ident["type"] = identitySystemUser
		case hasSystem:
			ident["type"] = identitySystem
		case len(uai) > 0:
			ident["type"] = identityUser
		default:
			ident["type"] = identityNone
		}
		if len(uai) > 0 {
			ident["userAssignedIdentities"] = uai
		} else {
			delete(ident, "userAssignedIdentities")
		}
		if !hasSystem {
			delete(ident, "principalId")
			delete(ident, "tenantId")
		}
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		return emitModel(cmd, out["identity"], nil, identityModel)
	}
	return cmd
}

func newHubIdentityShowCommand() *cobra.Command {
	var h hubRef
	cmd := &cobra.Command{
		Use:   "show --name NAME [--resource-group GROUP]",
		Short: "Show an IoT hub's managed identities (az iot hub identity show)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.resolve(cmd); err != nil {
				return err
			}
			_, hub, err := h.load(cmd)
			if err != nil {
				return err
			}
			return emitModel(cmd, hub["identity"], nil, identityModel)
		},
	}
	h.flags(cmd, nil, "name")
	h.idsFlag(cmd)
	return cmd
}

// assignRoleTo gives a service principal a role (name, GUID or id) at
// scope, as az's assign_identity does for --role and --scopes.
func assignRoleTo(cmd *cobra.Command, c *apiClient, principal, role, scope string) error {
	scope = "/" + strings.Trim(scope, "/")
	defID, err := c.roleDefinitionID(cmd, scope, role)
	if err != nil {
		return err
	}
	body := map[string]any{"properties": map[string]any{"roleDefinitionId": defID, "principalId": principal, "principalType": "ServicePrincipal"}}
	return c.do(cmd.Context(), "PUT", withAPI(scope+"/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), apiAuthz), body, nil)
}
