package authz

import "strings"

// Role definition types, as ARM reports them in properties.type.
const (
	BuiltInRole = "BuiltInRole"
	CustomRole  = "CustomRole"
)

// roleDefinitionsPath joins a scope and a role definition GUID into its id.
const roleDefinitionsPath = "/providers/Microsoft.Authorization/roleDefinitions/"

// Permission is one block of a role definition. NotActions subtract from
// Actions and NotDataActions from DataActions, within this block only.
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// RoleDefinition is an Azure role: a named set of permission blocks.
type RoleDefinition struct {
	// ID is the role's GUID (the ARM "name"), not its full resource id.
	ID               string       `json:"id"`
	Name             string       `json:"roleName"`
	Description      string       `json:"description"`
	Type             string       `json:"type"` // BuiltInRole or CustomRole
	AssignableScopes []string     `json:"assignableScopes"`
	Permissions      []Permission `json:"permissions"`
}

// FullID returns the role definition's resource id at scope:
// {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}. ARM
// reports built-in roles at the subscription they are read through
// (/subscriptions/{s}/providers/...); an empty scope or "/" gives the
// tenant-level form /providers/Microsoft.Authorization/roleDefinitions/{guid}.
func (d RoleDefinition) FullID(scope string) string {
	return strings.TrimRight(scope, "/") + roleDefinitionsPath + d.ID
}

// AssignableAt reports whether the role may be assigned at scope, that is
// whether one of its AssignableScopes is at or above it.
func (d RoleDefinition) AssignableAt(scope string) bool {
	target := trimScope(scope)
	for _, s := range d.AssignableScopes {
		if strings.TrimSpace(s) != "" && scopeCovers(trimScope(s), target) {
			return true
		}
	}
	return false
}

// RoleDefinitionGUID extracts the GUID from a role definition reference:
// a bare GUID or a full id at any scope. The result is lower-cased.
func RoleDefinitionGUID(id string) string {
	id = strings.TrimRight(strings.TrimSpace(id), "/")
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	return strings.ToLower(id)
}

// FindBuiltIn looks a built-in role up by role name, GUID or full role
// definition id, ignoring case.
func FindBuiltIn(nameOrID string) (RoleDefinition, bool) {
	guid := RoleDefinitionGUID(nameOrID)
	name := strings.TrimSpace(nameOrID)
	for _, d := range BuiltInRoles() {
		if d.ID == guid || strings.EqualFold(d.Name, name) {
			return d, true
		}
	}
	return RoleDefinition{}, false
}
