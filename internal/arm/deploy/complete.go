package deploy

import (
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// keptInCompleteMode reports whether Complete mode leaves a resource type
// alone even when the template doesn't list it: deployments (the record of
// this and other deployments) and Microsoft.Authorization's role
// assignments and locks, which ARM's Complete mode does not delete.
func keptInCompleteMode(typ string) bool {
	t := strings.ToLower(typ)
	return strings.HasPrefix(t, "microsoft.resources/") || strings.HasPrefix(t, "microsoft.authorization/")
}

// unlisted are the group's top-level resources a Complete mode deployment
// deletes: not deployed by the template (nor its nested deployments into
// the same group), not skipped by a false condition, not a kept type.
func (ru *run) unlisted(listed map[string]bool) ([]store.Resource, error) {
	res, err := ru.resourcesOfGroup()
	if err != nil {
		return nil, err
	}
	for _, id := range ru.skipped {
		listed[strings.ToLower(id)] = true
	}
	for _, p := range ru.existing {
		listed[strings.ToLower(p.id)] = true // read by the template, never deleted by it
	}
	var out []store.Resource
	for _, r := range res {
		if !listed[strings.ToLower(r.ID)] && !keptInCompleteMode(r.Type) {
			out = append(out, r)
		}
	}
	return out, nil
}

// resourcesOfGroup lists the group's top-level resources.
func (ru *run) resourcesOfGroup() ([]store.Resource, error) {
	all, err := ru.d.cfg.Resources.List(ru.ctx, store.ResourceFilter{Subscription: ru.sub, ResourceGroup: ru.rg})
	if err != nil {
		return nil, err
	}
	groupID := strings.ToLower(ru.scopeID())
	var out []store.Resource
	for _, r := range all {
		if strings.ToLower(r.ParentID) == groupID {
			out = append(out, r)
		}
	}
	return out, nil
}

// listedIDs are the resources this deployment accounts for: its own and,
// for nested deployments in the same group, theirs (read from their stored
// outputResources).
func (ru *run) listedIDs() map[string]bool {
	listed := map[string]bool{}
	for _, p := range ru.all {
		listed[strings.ToLower(p.id)] = true
		if !strings.EqualFold(p.typ, Type) {
			continue
		}
		res, err := ru.d.cfg.Resources.Get(ru.ctx, p.id)
		if err != nil {
			continue
		}
		doc, err := arm.ParseDocument(res.Body)
		if err != nil {
			continue
		}
		var props struct {
			OutputResources []struct {
				ID string `json:"id"`
			} `json:"outputResources"`
		}
		_ = doc.Decode("properties", &props)
		for _, o := range props.OutputResources {
			listed[strings.ToLower(o.ID)] = true
		}
	}
	return listed
}

// deleteUnlisted carries out Complete mode after every listed resource
// deployed: each unlisted resource of the group is deleted with the
// deployer's rights, one Delete operation each.
func (ru *run) deleteUnlisted() ([]operation, error) {
	victims, err := ru.unlisted(ru.listedIDs())
	if err != nil {
		return nil, err
	}
	rec := operationRecorder{resources: ru.d.cfg.Resources, deploymentID: ru.deploymentID()}
	var ops []operation
	var details []arm.Error
	for _, v := range victims {
		op := operation{ID: newOperationID(), Provisioning: "Delete", State: "Running", Started: ru.d.cfg.Now(),
			Target: targetResource{ID: v.ID, Type: v.Type, Name: v.Name}}
		ru.record(rec, op)
		err := ru.delete(v)
		op.finish(ru.d.cfg.Now(), false, err)
		ru.record(rec, op)
		ops = append(ops, op)
		if err != nil {
			ae := arm.AsError(err)
			details = append(details, arm.Error{Code: ae.Code, Message: ae.Message, Target: v.ID})
		}
	}
	if len(details) > 0 {
		e := arm.Errorf(http.StatusConflict, "DeploymentFailed",
			"At least one resource deployment operation failed: Complete mode could not delete every resource the template does not list. Please list deployment operations for details.")
		e.Details = details
		return ops, e
	}
	return ops, nil
}

func (ru *run) delete(r store.Resource) error {
	id, err := arm.ParseResourceID(r.ID)
	if err != nil {
		return err
	}
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, id.FullType()+"/delete", id.String()); err != nil {
		return err
	}
	op, found, err := ru.d.svc.DeleteResource(ru.ctx, id, "")
	if err != nil || !found || op == nil {
		return err
	}
	return ru.wait(op.ID)
}
