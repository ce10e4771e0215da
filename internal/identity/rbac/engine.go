package rbac

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/store"
)

// ARM types managed here.
const (
	AssignmentType = "Microsoft.Authorization/roleAssignments"
	DefinitionType = "Microsoft.Authorization/roleDefinitions"
)

// Engine keeps the authorization snapshot current.
type Engine struct {
	resources store.Resources
	policy    *authz.Policy
	delay     time.Duration
	now       func() time.Time
	log       *slog.Logger

	// reloadMu serialises reloads so an older snapshot never replaces a newer one.
	reloadMu sync.Mutex
	mu       sync.Mutex
	pending  []pendingSnapshot // delayed snapshots, oldest first
}

type pendingSnapshot struct {
	at time.Time
	e  *authz.Evaluator
}

// NewEngine builds an engine; delay > 0 makes every change take effect only
// after that long.
func NewEngine(resources store.Resources, delay time.Duration, now func() time.Time, log *slog.Logger) *Engine {
	return &Engine{resources: resources, policy: authz.NewPolicy(authz.NewEvaluator(authz.BuiltInRoles(), nil)),
		delay: delay, now: now, log: log}
}

// Authorize decides an action for a principal at a scope.
func (e *Engine) Authorize(principalID, action string, isDataAction bool, scope string) authz.Decision {
	e.applyDue()
	return e.policy.Authorize(principalID, action, isDataAction, scope)
}

// Evaluator returns the snapshot in force.
func (e *Engine) Evaluator() *authz.Evaluator {
	e.applyDue()
	return e.policy.Load()
}

func (e *Engine) applyDue() {
	if e.delay <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for len(e.pending) > 0 && !e.pending[0].at.After(now) {
		e.policy.Store(e.pending[0].e)
		e.pending = e.pending[1:]
	}
}

// Reload rebuilds the snapshot from the store; with a propagation delay it
// takes effect only after the delay.
func (e *Engine) Reload(ctx context.Context) error { return e.reload(ctx, false) }

// ReloadNow rebuilds the snapshot and applies it at once, whatever the
// delay: for start-up, where the existing assignments must hold immediately.
func (e *Engine) ReloadNow(ctx context.Context) error { return e.reload(ctx, true) }

func (e *Engine) reload(ctx context.Context, immediate bool) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	roles := authz.BuiltInRoles()
	defs, err := e.resources.List(ctx, store.ResourceFilter{Type: DefinitionType})
	if err != nil {
		return fmt.Errorf("rbac: list role definitions: %w", err)
	}
	for _, d := range defs {
		rd, err := decodeDefinition(d)
		if err != nil {
			e.log.Warn("skipping unreadable role definition", "id", d.ID, "err", err)
			continue
		}
		roles = append(roles, rd)
	}
	stored, err := e.resources.List(ctx, store.ResourceFilter{Type: AssignmentType})
	if err != nil {
		return fmt.Errorf("rbac: list role assignments: %w", err)
	}
	assignments := make([]authz.Assignment, 0, len(stored))
	for _, r := range stored {
		a, err := decodeAssignment(r)
		if err != nil {
			e.log.Warn("skipping unreadable role assignment", "id", r.ID, "err", err)
			continue
		}
		assignments = append(assignments, a)
	}
	ev := authz.NewEvaluator(roles, assignments)
	if e.delay <= 0 || immediate {
		e.mu.Lock()
		e.pending = nil
		e.mu.Unlock()
		e.policy.Store(ev)
		return nil
	}
	e.mu.Lock()
	e.pending = append(e.pending, pendingSnapshot{at: e.now().Add(e.delay), e: ev})
	e.mu.Unlock()
	return nil
}

// Run reloads periodically so changes made through other nodes arrive.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := e.Reload(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("reload authorization policy", "err", err)
			}
		}
	}
}

// DeleteAssignmentsOf removes every role assignment of a principal (used
// when the principal is deleted: Azure removes them with it).
func (e *Engine) DeleteAssignmentsOf(ctx context.Context, principalID string) error {
	stored, err := e.resources.List(ctx, store.ResourceFilter{Type: AssignmentType})
	if err != nil {
		return fmt.Errorf("rbac: list role assignments: %w", err)
	}
	for _, r := range stored {
		a, err := decodeAssignment(r)
		if err != nil || !strings.EqualFold(a.PrincipalID, principalID) {
			continue
		}
		if err := e.resources.Delete(ctx, r.ID, ""); err != nil {
			return fmt.Errorf("rbac: delete role assignment %s: %w", r.ID, err)
		}
	}
	return e.Reload(ctx)
}

// assignmentProperties is the stored properties of a role assignment.
type assignmentProperties struct {
	RoleDefinitionID string  `json:"roleDefinitionId"`
	PrincipalID      string  `json:"principalId"`
	PrincipalType    string  `json:"principalType"`
	Scope            string  `json:"scope"`
	Condition        *string `json:"condition"`
	ConditionVersion *string `json:"conditionVersion"`
	Description      *string `json:"description"`
	CreatedOn        string  `json:"createdOn,omitempty"`
	UpdatedOn        string  `json:"updatedOn,omitempty"`
	CreatedBy        string  `json:"createdBy,omitempty"`
	UpdatedBy        string  `json:"updatedBy,omitempty"`

	DelegatedManagedIdentityResourceID *string `json:"delegatedManagedIdentityResourceId"`
}

func decodeAssignment(r store.Resource) (authz.Assignment, error) {
	doc, err := arm.ParseDocument(r.Body)
	if err != nil {
		return authz.Assignment{}, err
	}
	var p assignmentProperties
	if err := doc.Decode("properties", &p); err != nil {
		return authz.Assignment{}, err
	}
	a := authz.Assignment{ID: r.ID, PrincipalID: p.PrincipalID, RoleDefinitionID: authz.RoleDefinitionGUID(p.RoleDefinitionID), Scope: p.Scope}
	if p.Condition != nil {
		a.Condition = *p.Condition
	}
	return a, nil
}

func decodeDefinition(r store.Resource) (authz.RoleDefinition, error) {
	doc, err := arm.ParseDocument(r.Body)
	if err != nil {
		return authz.RoleDefinition{}, err
	}
	var p definitionProperties
	if err := doc.Decode("properties", &p); err != nil {
		return authz.RoleDefinition{}, err
	}
	return authz.RoleDefinition{ID: strings.ToLower(r.Name), Name: p.RoleName, Description: p.Description,
		Type: authz.CustomRole, AssignableScopes: p.AssignableScopes, Permissions: p.Permissions}, nil
}

type definitionProperties struct {
	RoleName         string             `json:"roleName"`
	Description      string             `json:"description"`
	Type             string             `json:"type"`
	AssignableScopes []string           `json:"assignableScopes"`
	Permissions      []authz.Permission `json:"permissions"`
	CreatedOn        string             `json:"createdOn,omitempty"`
	UpdatedOn        string             `json:"updatedOn,omitempty"`
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
