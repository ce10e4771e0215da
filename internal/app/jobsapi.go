package app

import (
	"errors"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/jobs"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// hubJobs serves a hub's import/export jobs on Outpost's API with the
// operator's resource-manager token, for `outpost iot hub job`: the
// service API's /jobs routes under /outpost/iothubs/{name}, with the
// service API's bodies (JobProperties).
//
//	POST   /outpost/iothubs/{name}/jobs/create   JobProperties → the queued job
//	GET    /outpost/iothubs/{name}/jobs          {"value": [JobProperties]}
//	GET    /outpost/iothubs/{name}/jobs/{id}     JobProperties
//	DELETE /outpost/iothubs/{name}/jobs/{id}     cancel; the job as it now is
//
// The rights are the resource provider's: starting (or cancelling) a job
// needs the exportDevices or importDevices action of its type, as the ARM
// actions do; looking needs jobs/read, as GET {hub}/jobs does.
func (a *App) hubJobs(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer, hubName string, rest []string) error {
	ctx := r.Context()
	h, ok, err := a.hub.hubs.Get(ctx, hubName)
	if err != nil {
		return err
	}
	if !ok {
		return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No IoT hub named '%s'.", hubName)
	}
	read := func() error { return authz.decide(p, "Microsoft.Devices/IotHubs/jobs/read", h.ResourceID) }
	start := func(t jobs.Type) error {
		action := map[jobs.Type]string{jobs.TypeExport: "exportDevices", jobs.TypeImport: "importDevices"}[t]
		return authz.decide(p, "Microsoft.Devices/IotHubs/"+action+"/action", h.ResourceID)
	}
	runner := a.hub.jobs
	switch {
	case len(rest) == 1 && strings.EqualFold(rest[0], "create") && r.Method == http.MethodPost:
		var req jobs.Request
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		t, err := jobs.ParseType(req.Type)
		if err != nil {
			return apiJobError(err)
		}
		if err := start(t); err != nil {
			return err
		}
		job, err := runner.Create(ctx, jobs.Hub{Name: h.Name, ResourceID: h.ResourceID}, req)
		if err != nil {
			return apiJobError(err)
		}
		return writeJSON(w, http.StatusOK, job)
	case len(rest) == 0 && r.Method == http.MethodGet:
		if err := read(); err != nil {
			return err
		}
		list, err := runner.List(ctx, h.Name)
		if err != nil {
			return apiJobError(err)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"value": list})
	case len(rest) == 1 && r.Method == http.MethodGet:
		if err := read(); err != nil {
			return err
		}
		job, err := runner.Get(ctx, h.Name, rest[0])
		if err != nil {
			return apiJobError(err)
		}
		return writeJSON(w, http.StatusOK, job)
	case len(rest) == 1 && r.Method == http.MethodDelete:
		// Reading first keeps a principal without jobs/read from learning
		// which job ids exist.
		if err := read(); err != nil {
			return err
		}
		job, err := runner.Get(ctx, h.Name, rest[0])
		if err != nil {
			return apiJobError(err)
		}
		if err := start(job.Type); err != nil {
			return err
		}
		job, err = runner.Cancel(ctx, h.Name, rest[0])
		if err != nil {
			return apiJobError(err)
		}
		return writeJSON(w, http.StatusOK, job)
	}
	return arm.Errorf(http.StatusNotFound, "NotFound",
		"No Outpost API at '%s %s': use POST …/jobs/create, GET …/jobs, GET …/jobs/{id} or DELETE …/jobs/{id}.", r.Method, r.URL.Path)
}

// apiJobError renders the runner's request errors in the ARM envelope the
// rest of Outpost's API uses.
func apiJobError(err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		return arm.Errorf(re.Status, re.Code, "%s", re.Message)
	}
	return err
}
