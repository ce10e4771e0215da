package app

import (
	"context"
	"errors"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/hub/jobs"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// armJobs adapts the job runner to the IotHubs resource type: its
// exportDevices and importDevices actions and its jobs read.
type armJobs struct{ r *jobs.Runner }

var _ hubresource.JobStarter = armJobs{}

func (j armJobs) StartJob(ctx context.Context, h hubresource.JobHub, req hubresource.JobRequest) (hubresource.Job, error) {
	var identity *jobs.ManagedIdentity
	if req.UserAssignedIdentity != "" {
		identity = &jobs.ManagedIdentity{UserAssignedIdentity: req.UserAssignedIdentity}
	}
	p, err := j.r.Create(ctx, jobs.Hub{Name: h.Name, ResourceID: h.ResourceID}, jobs.Request{
		Type:                  req.Type,
		InputBlobContainerURI: req.InputBlobContainerURI, InputBlobName: req.InputBlobName,
		OutputBlobContainerURI: req.OutputBlobContainerURI, OutputBlobName: req.OutputBlobName,
		ExcludeKeysInExport: req.ExcludeKeys, StorageAuthenticationType: req.AuthenticationType, Identity: identity,
		IncludeConfigurations: req.IncludeConfigurations, ConfigurationsBlobName: req.ConfigurationsBlobName,
	})
	if err != nil {
		return hubresource.Job{}, providerError(err)
	}
	return providerJob(p), nil
}

func (j armJobs) ListJobs(ctx context.Context, hub string) ([]hubresource.Job, error) {
	list, err := j.r.List(ctx, hub)
	if err != nil {
		return nil, providerError(err)
	}
	out := make([]hubresource.Job, 0, len(list))
	for _, p := range list {
		out = append(out, providerJob(p))
	}
	return out, nil
}

func providerJob(p jobs.Properties) hubresource.Job {
	return hubresource.Job{ID: p.JobID, Type: string(p.Type), Status: string(p.Status),
		Start: p.StartTimeUTC, End: p.EndTimeUTC, FailureReason: p.FailureReason}
}

// providerError renders the runner's request errors (ArgumentInvalid,
// JobQuotaExceeded, JobNotFound) in the IoT Hub resource provider's flat
// error shape; anything else stays an internal error.
func providerError(err error) error {
	var re *registry.Error
	if !errors.As(err, &re) {
		return err
	}
	ae := arm.Errorf(re.Status, re.Code, "%s", re.Message)
	ae.Flat = true
	return ae
}
