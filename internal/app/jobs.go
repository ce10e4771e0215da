package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/outpost-iot/outpost/internal/hub/jobs"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
)

// buildJobs builds the import/export job runner. The egress client is built
// later in New (it needs the bound listeners), so the runner reaches it
// through lateEgress.
func (a *App) buildJobs() error {
	r, err := jobs.New(jobs.Config{
		Bus: a.bus, Devices: a.store.Devices(), Registry: a.hub.registry,
		Resources: a.store.Resources(), Tokens: a, Egress: lateEgress{a},
		Log: a.log.With("component", "hub-jobs"),
	})
	if err != nil {
		return fmt.Errorf("app: jobs: %w", err)
	}
	a.hub.jobs = r
	return nil
}

// runJobs runs queued jobs until ctx ends.
func (a *App) runJobs(ctx context.Context) error { return a.hub.jobs.Run(ctx) }

// Jobs is the import/export job runner (tests and the CLI adapter use it).
func (a *App) Jobs() *jobs.Runner { return a.hub.jobs }

// lateEgress reaches the egress client once New has built it.
type lateEgress struct{ a *App }

var errNoEgress = errors.New("app: egress client not built yet")

func (e lateEgress) Do(r *http.Request) (*http.Response, error) {
	if e.a.targets.egress == nil {
		return nil, errNoEgress
	}
	return e.a.targets.egress.Do(r)
}

func (e lateEgress) Check(ctx context.Context, u *url.URL) error {
	if e.a.targets.egress == nil {
		return errNoEgress
	}
	return e.a.targets.egress.Check(ctx, u)
}

// jobsAPI hands the service API the runner, which buildJobs makes after
// buildHub has built the service API.
type jobsAPI struct{ a *App }

var _ serviceapi.Jobs = jobsAPI{}

func (j jobsAPI) Create(ctx context.Context, h jobs.Hub, req jobs.Request) (jobs.Properties, error) {
	return j.a.hub.jobs.Create(ctx, h, req)
}

func (j jobsAPI) Get(ctx context.Context, hub, id string) (jobs.Properties, error) {
	return j.a.hub.jobs.Get(ctx, hub, id)
}

func (j jobsAPI) List(ctx context.Context, hub string) ([]jobs.Properties, error) {
	return j.a.hub.jobs.List(ctx, hub)
}

func (j jobsAPI) Cancel(ctx context.Context, hub, id string) (jobs.Properties, error) {
	return j.a.hub.jobs.Cancel(ctx, hub, id)
}
