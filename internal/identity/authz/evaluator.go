package authz

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Assignment grants a principal a role at a scope.
type Assignment struct {
	ID          string `json:"id"`
	PrincipalID string `json:"principalId"`
	// RoleDefinitionID is the role's GUID; a full role definition id at any
	// scope is accepted too.
	RoleDefinitionID string `json:"roleDefinitionId"`
	Scope            string `json:"scope"`
	// Condition is an ABAC condition. It is not evaluated: an assignment
	// with one grants no data actions.
	Condition string `json:"condition,omitempty"`
}

// Decision is the answer to one authorization question. When Allowed, the
// remaining fields name the assignment and role that granted it; otherwise
// Reason says what is missing, for a person to act on.
type Decision struct {
	Allowed          bool
	Reason           string
	AssignmentID     string
	RoleDefinitionID string // GUID
	RoleName         string
	Scope            string // scope of the granting assignment
}

func (d Decision) String() string {
	if !d.Allowed {
		return "denied: " + d.Reason
	}
	return fmt.Sprintf("allowed by role %q (%s) assigned at %s (assignment %s)",
		d.RoleName, d.RoleDefinitionID, d.Scope, d.AssignmentID)
}

// Evaluator answers authorization questions from a snapshot of role
// definitions and assignments. Its answers never change once it is built
// (the only thing it writes is a memo of denial hints) and it is safe for
// concurrent use; build a new one when the snapshot changes. A nil
// *Evaluator denies everything.
type Evaluator struct {
	roles      map[string]*compiledRole // by lower-case GUID
	roleOrder  []*compiledRole          // input order, for suggestions
	principals map[string]*principalGrants

	suggestions [2]sync.Map // operation → []string; [0] actions, [1] data actions
	suggested   atomic.Int64
}

type principalGrants struct {
	assignments []Assignment // as given, for AssignmentsFor
	compiled    []compiledAssignment
}

type compiledAssignment struct {
	id          string
	roleID      string // lower-case GUID
	scope       scopeMatcher
	role        *compiledRole
	conditioned bool
}

type compiledRole struct {
	def   RoleDefinition
	perms []compiledPermission
}

type compiledPermission struct {
	actions, notActions, dataActions, notDataActions []pattern
}

// NewEvaluator compiles a snapshot. roles must contain every role the
// assignments refer to — usually append(BuiltInRoles(), custom...); when two
// roles share a GUID the later one wins. Assignments to unknown roles grant
// nothing and are named in denial reasons; assignments without a principal
// are dropped and ones without a scope apply nowhere, so that a malformed
// record never widens access. The arguments are copied.
func NewEvaluator(roles []RoleDefinition, assignments []Assignment) *Evaluator {
	e := &Evaluator{
		roles:      make(map[string]*compiledRole, len(roles)),
		principals: make(map[string]*principalGrants),
	}
	for _, d := range roles {
		cr := compileRole(d)
		key := RoleDefinitionGUID(d.ID)
		if old, ok := e.roles[key]; ok {
			e.roleOrder = slices.DeleteFunc(e.roleOrder, func(r *compiledRole) bool { return r == old })
		}
		e.roles[key] = cr
		e.roleOrder = append(e.roleOrder, cr)
	}
	for _, a := range assignments {
		if strings.TrimSpace(a.PrincipalID) == "" {
			continue
		}
		key := strings.ToLower(a.PrincipalID)
		g := e.principals[key]
		if g == nil {
			g = &principalGrants{}
			e.principals[key] = g
		}
		roleID := RoleDefinitionGUID(a.RoleDefinitionID)
		g.assignments = append(g.assignments, a)
		g.compiled = append(g.compiled, compiledAssignment{
			id:          a.ID,
			roleID:      roleID,
			scope:       newScopeMatcher(a.Scope),
			role:        e.roles[roleID],
			conditioned: strings.TrimSpace(a.Condition) != "",
		})
	}
	return e
}

func compileRole(d RoleDefinition) *compiledRole {
	d = cloneRole(d)
	d.ID = RoleDefinitionGUID(d.ID)
	cr := &compiledRole{def: d, perms: make([]compiledPermission, len(d.Permissions))}
	for i, p := range d.Permissions {
		cr.perms[i] = compiledPermission{
			actions:        compilePatterns(p.Actions),
			notActions:     compilePatterns(p.NotActions),
			dataActions:    compilePatterns(p.DataActions),
			notDataActions: compilePatterns(p.NotDataActions),
		}
	}
	return cr
}

func compilePatterns(raw []string) []pattern {
	out := make([]pattern, len(raw))
	for i, r := range raw {
		out[i] = compilePattern(strings.TrimSpace(r))
	}
	return out
}

func cloneRole(d RoleDefinition) RoleDefinition {
	d.AssignableScopes = slices.Clone(d.AssignableScopes)
	perms := make([]Permission, len(d.Permissions))
	for i, p := range d.Permissions {
		perms[i] = Permission{
			Actions:        slices.Clone(p.Actions),
			NotActions:     slices.Clone(p.NotActions),
			DataActions:    slices.Clone(p.DataActions),
			NotDataActions: slices.Clone(p.NotDataActions),
		}
	}
	d.Permissions = perms
	return d
}

// Authorize decides whether principalID may perform action on scope.
// isDataAction selects which half of the role definitions applies:
// DataActions/NotDataActions for data-plane operations, Actions/NotActions
// for management operations.
func (e *Evaluator) Authorize(principalID, action string, isDataAction bool, scope string) Decision {
	target := trimScope(scope)
	ascii := isASCII(action)
	g := e.grantsFor(principalID)
	// Which assignments cover the scope is remembered for explain; most
	// principals hold few assignments, so this stays on the stack.
	var stack [32]bool
	var covered []bool
	if g != nil {
		covered = stack[:0]
		for i := range g.compiled {
			a := &g.compiled[i]
			c := a.scope.covers(target)
			covered = append(covered, c)
			if !c || a.role == nil || (isDataAction && a.conditioned) {
				continue
			}
			if a.role.grants(action, ascii, isDataAction) {
				return Decision{
					Allowed:          true,
					AssignmentID:     a.id,
					RoleDefinitionID: a.role.def.ID,
					RoleName:         a.role.def.Name,
					Scope:            a.scope.scope,
				}
			}
		}
	}
	return Decision{Reason: e.explain(principalID, action, isDataAction, target, g, covered)}
}

// AssignmentsFor returns a copy of the principal's assignments, in the order
// they were given.
func (e *Evaluator) AssignmentsFor(principalID string) []Assignment {
	if g := e.grantsFor(principalID); g != nil {
		return slices.Clone(g.assignments)
	}
	return nil
}

// HasAnyAssignment reports whether the principal holds any role assignment.
func (e *Evaluator) HasAnyAssignment(principalID string) bool {
	g := e.grantsFor(principalID)
	return g != nil && len(g.assignments) > 0
}

// Role looks a role of this snapshot up by GUID, full id or role name
// (case-insensitive).
func (e *Evaluator) Role(nameOrID string) (RoleDefinition, bool) {
	if e == nil {
		return RoleDefinition{}, false
	}
	if r, ok := e.roles[RoleDefinitionGUID(nameOrID)]; ok {
		return cloneRole(r.def), true
	}
	name := strings.TrimSpace(nameOrID)
	for _, r := range e.roleOrder {
		if strings.EqualFold(r.def.Name, name) {
			return cloneRole(r.def), true
		}
	}
	return RoleDefinition{}, false
}

// grantsFor finds a principal without allocating when the id is already
// lower-case, as object ids normally are.
func (e *Evaluator) grantsFor(principalID string) *principalGrants {
	if e == nil {
		return nil
	}
	if g, ok := e.principals[principalID]; ok {
		return g
	}
	for i := 0; i < len(principalID); i++ {
		if c := principalID[i]; ('A' <= c && c <= 'Z') || c >= 0x80 {
			return e.principals[strings.ToLower(principalID)]
		}
	}
	return nil
}

func (r *compiledRole) grants(op string, ascii, data bool) bool {
	for i := range r.perms {
		allow, deny := r.perms[i].lists(data)
		if anyMatch(allow, op, ascii) && !anyMatch(deny, op, ascii) {
			return true
		}
	}
	return false
}

// lists returns the allow- and not-list that apply to management (data
// false) or data operations.
func (p *compiledPermission) lists(data bool) (allow, deny []pattern) {
	if data {
		return p.dataActions, p.notDataActions
	}
	return p.actions, p.notActions
}

func anyMatch(ps []pattern, op string, ascii bool) bool {
	for i := range ps {
		if ps[i].match(op, ascii) {
			return true
		}
	}
	return false
}

// Policy holds the current Evaluator for concurrent readers; writers build
// a new Evaluator and Store it. The zero Policy denies everything.
type Policy struct {
	current atomic.Pointer[Evaluator]
}

// NewPolicy returns a Policy holding e.
func NewPolicy(e *Evaluator) *Policy {
	p := &Policy{}
	p.Store(e)
	return p
}

// Load returns the current Evaluator (nil before the first Store).
func (p *Policy) Load() *Evaluator { return p.current.Load() }

// Store replaces the current Evaluator.
func (p *Policy) Store(e *Evaluator) { p.current.Store(e) }

// Authorize asks the current Evaluator.
func (p *Policy) Authorize(principalID, action string, isDataAction bool, scope string) Decision {
	return p.Load().Authorize(principalID, action, isDataAction, scope)
}
