package serviceapi

import (
	"context"
	"net/http"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/jobs"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// Jobs runs bulk import/export jobs; *jobs.Runner implements it.
type Jobs interface {
	Create(ctx context.Context, h jobs.Hub, req jobs.Request) (jobs.Properties, error)
	Get(ctx context.Context, hub, id string) (jobs.Properties, error)
	List(ctx context.Context, hub string) ([]jobs.Properties, error)
	Cancel(ctx context.Context, hub, id string) (jobs.Properties, error)
}

// Import/export jobs read and write the whole registry: RegistryWrite to
// start or cancel one (as IoT Hub asks), RegistryRead to look.
var (
	jobsRead  = access{[]string{"RegistryRead", "RegistryWrite"}, "Microsoft.Devices/IotHubs/jobs/read"}
	jobsWrite = access{[]string{"RegistryWrite"}, "Microsoft.Devices/IotHubs/jobs/write"}
)

// jobs serves /jobs/create, /jobs and /jobs/{id}.
func (h *Handler) jobs(w http.ResponseWriter, r *http.Request, target hub.Hub, seg []string) error {
	if h.jobRunner == nil {
		return &registry.Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "Import/export jobs are not enabled on this Outpost."}
	}
	ctx := r.Context()
	switch {
	case len(seg) == 2 && seg[1] == "create" && r.Method == http.MethodPost:
		if err := h.authorize(r, target, jobsWrite); err != nil {
			return err
		}
		var req jobs.Request
		if err := decode(r, &req); err != nil {
			return err
		}
		p, err := h.jobRunner.Create(ctx, jobs.Hub{Name: target.Name, ResourceID: target.ResourceID}, req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, p, "")
	case len(seg) == 1 && r.Method == http.MethodGet:
		if err := h.authorize(r, target, jobsRead); err != nil {
			return err
		}
		list, err := h.jobRunner.List(ctx, target.Name)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, list, "")
	case len(seg) == 2 && r.Method == http.MethodGet:
		if err := h.authorize(r, target, jobsRead); err != nil {
			return err
		}
		p, err := h.jobRunner.Get(ctx, target.Name, seg[1])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, p, "")
	case len(seg) == 2 && r.Method == http.MethodDelete:
		if err := h.authorize(r, target, jobsWrite); err != nil {
			return err
		}
		p, err := h.jobRunner.Cancel(ctx, target.Name, seg[1])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, p, "")
	}
	return &registry.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: sprintf("%s is not supported on %s: use POST /jobs/create, GET /jobs, GET /jobs/{id} or DELETE /jobs/{id}.", r.Method, r.URL.Path)}
}
