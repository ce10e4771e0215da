package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/store"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Config holds a Runner's dependencies and tuning.
type Config struct {
	Bus       *bus.Bus
	Devices   store.Devices
	Registry  *registry.Service
	Resources ResourceGetter
	Tokens    TokenSource
	Egress    Egress
	Log       *slog.Logger
	Now       func() time.Time
	// BatchSize is how many import lines one registry transaction applies
	// (default 1000).
	BatchSize int
	// Poll is how often Run looks for queued jobs and lost ones (default
	// 500 ms; a job created on this node starts at once).
	Poll time.Duration
	// Heartbeat is how often a running job proves its node is alive
	// (default 2 s); StaleAfter is when a silent running job counts as
	// lost (default 15 s).
	Heartbeat  time.Duration
	StaleAfter time.Duration
}

// Hub names the hub a job belongs to.
type Hub struct {
	Name, ResourceID string
}

// Runner creates, runs and answers for import/export jobs.
type Runner struct {
	cfg     Config
	records *records
	node    string
	wake    chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // by jobKey
}

// New builds a runner; Run executes its jobs.
func New(cfg Config) (*Runner, error) {
	if cfg.Bus == nil || cfg.Devices == nil || cfg.Registry == nil || cfg.Resources == nil || cfg.Tokens == nil || cfg.Egress == nil {
		return nil, errors.New("jobs: Bus, Devices, Registry, Resources, Tokens and Egress are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 15 * time.Second
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Runner{cfg: cfg, records: &records{bus: cfg.Bus}, node: hex.EncodeToString(b),
		wake: make(chan struct{}, 1), running: map[string]context.CancelCauseFunc{}}, nil
}

// Create validates a request and queues the job; it fails with
// JobQuotaExceeded while the hub has another active job.
func (r *Runner) Create(ctx context.Context, h Hub, req Request) (Properties, error) {
	p, err := req.normalize(uuid.NewString())
	if err != nil {
		return Properties{}, err
	}
	now := r.cfg.Now().UTC()
	rec := record{Properties: p, Hub: strings.ToLower(h.Name), HubResourceID: h.ResourceID, Created: now}
	if err := r.records.create(ctx, rec); err != nil {
		return Properties{}, err
	}
	r.cfg.Log.Info("job queued", "hub", rec.Hub, "job", p.JobID, "type", p.Type, "auth", p.StorageAuthenticationType)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return rec.Properties, nil
}

// Get returns one job of a hub.
func (r *Runner) Get(ctx context.Context, hub, id string) (Properties, error) {
	rec, _, err := r.records.get(ctx, hub, id)
	return rec.Properties, err
}

// List returns a hub's jobs, oldest first.
func (r *Runner) List(ctx context.Context, hub string) ([]Properties, error) {
	recs, err := r.records.list(ctx, hub)
	if err != nil {
		return nil, err
	}
	out := make([]Properties, 0, len(recs))
	for _, rec := range recs {
		out = append(out, rec.Properties)
	}
	return out, nil
}

// Wait polls a job until it is final or ctx ends (tests and the CLI's
// --wait use the REST API; this is for in-process callers).
func (r *Runner) Wait(ctx context.Context, hub, id string) (Properties, error) {
	for {
		p, err := r.Get(ctx, hub, id)
		if err != nil || p.Status.Final() {
			return p, err
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var (
	errCancelled = errors.New("jobs: cancelled")
	errShutdown  = errors.New("jobs: node shutting down")
)

// Cancel stops a job: a queued one is cancelled at once, a running one
// at its next batch boundary (on whichever node runs it). A final job is
// returned unchanged.
func (r *Runner) Cancel(ctx context.Context, hub, id string) (Properties, error) {
	rec, err := r.records.update(ctx, hub, id, func(rec *record) error {
		switch rec.Status {
		case StatusQueued:
			now := r.cfg.Now().UTC()
			rec.Status, rec.EndTimeUTC = StatusCancelled, &now
			rec.FailureReason = "Cancelled before it started."
		case StatusRunning:
			rec.CancelRequested = true
		default:
			return errSkip
		}
		return nil
	})
	if errors.Is(err, errSkip) {
		return rec.Properties, nil
	}
	if err != nil {
		return Properties{}, err
	}
	if rec.Status == StatusCancelled {
		if err := r.records.release(ctx, rec.Hub, rec.JobID); err != nil {
			return Properties{}, err
		}
	}
	r.mu.Lock()
	if cancel := r.running[jobKey(rec.Hub, rec.JobID)]; cancel != nil {
		cancel(errCancelled)
	}
	r.mu.Unlock()
	r.cfg.Log.Info("job cancel requested", "hub", rec.Hub, "job", id, "status", rec.Status)
	return rec.Properties, nil
}

// Run executes queued jobs and fails jobs whose node was lost, until ctx
// ends; then it stops the jobs it runs (each records why) and returns.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(r.cfg.Poll)
	defer ticker.Stop()
	for {
		if err := r.sweep(ctx, &wg); err != nil && ctx.Err() == nil {
			r.cfg.Log.Warn("job sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for _, cancel := range r.running {
				cancel(errShutdown)
			}
			r.mu.Unlock()
			return nil
		case <-ticker.C:
		case <-r.wake:
		}
	}
}

// sweep claims queued jobs and fails running ones nobody heartbeats.
func (r *Runner) sweep(ctx context.Context, wg *sync.WaitGroup) error {
	recs, err := r.records.list(ctx, "")
	if err != nil {
		return err
	}
	now := r.cfg.Now().UTC()
	for _, rec := range recs {
		key := jobKey(rec.Hub, rec.JobID)
		r.mu.Lock()
		_, local := r.running[key]
		r.mu.Unlock()
		switch {
		case local:
		case rec.Status == StatusQueued:
			claimed, err := r.records.update(ctx, rec.Hub, rec.JobID, func(c *record) error {
				if c.Status != StatusQueued {
					return errSkip
				}
				c.Status, c.Node, c.Heartbeat = StatusRunning, r.node, now
				if c.StartTimeUTC == nil {
					c.StartTimeUTC = &now
				}
				return nil
			})
			if errors.Is(err, errSkip) {
				continue
			}
			if err != nil {
				return err
			}
			r.start(ctx, wg, claimed)
		case rec.Status == StatusRunning && now.Sub(rec.Heartbeat) > r.cfg.StaleAfter:
			reason := "The node running this job stopped before it finished; rerun the job."
			if rec.Type == TypeImport {
				reason = lostImportReason(rec)
			}
			if _, err := r.finish(ctx, rec, StatusFailed, reason, func(c *record) bool {
				return c.Status == StatusRunning && now.Sub(c.Heartbeat) > r.cfg.StaleAfter
			}); err != nil && !errors.Is(err, errSkip) {
				return err
			}
			r.cfg.Log.Warn("job lost its node", "hub", rec.Hub, "job", rec.JobID, "node", rec.Node, "checkpoint", rec.Checkpoint)
		}
	}
	return nil
}

// lostImportReason says exactly what the registry holds of an import
// whose node stopped.
func lostImportReason(rec record) string {
	applied := "none of " + rec.InputBlobName + " was applied"
	if rec.Checkpoint > 0 {
		applied = sprintf("lines 1–%d of %s were applied", rec.Checkpoint, rec.InputBlobName)
		if rec.Errors > 0 {
			applied += sprintf(" (except %d refused lines among them; importErrors.log was not written)", rec.Errors)
		}
	}
	inflight := ""
	if rec.InFlight > rec.Checkpoint {
		inflight = sprintf("; lines %d–%d were being written and may or may not be applied", rec.Checkpoint+1, rec.InFlight)
	}
	return sprintf("The node running this import stopped: %s%s. Rerun the job to apply the rest (createOrUpdate lines can be applied again safely).", applied, inflight)
}

// start runs a claimed job in its own goroutine.
func (r *Runner) start(ctx context.Context, wg *sync.WaitGroup, rec record) {
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	key := jobKey(rec.Hub, rec.JobID)
	r.mu.Lock()
	r.running[key] = cancel
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, key)
			r.mu.Unlock()
			cancel(nil)
		}()
		r.execute(jctx, rec)
	}()
}

// execute runs one job to a final state.
func (r *Runner) execute(ctx context.Context, rec record) {
	log := r.cfg.Log.With("hub", rec.Hub, "job", rec.JobID, "type", rec.Type)
	log.Info("job started", "auth", rec.StorageAuthenticationType)
	stopBeat := r.heartbeat(ctx, rec)
	var (
		progress *jobProgress
		err      error
	)
	switch rec.Type {
	case TypeImport:
		progress, err = r.runImport(ctx, rec, log)
	case TypeExport:
		progress, err = r.runExport(ctx, rec, log)
	default:
		err = failf("Job type %s is not supported.", rec.Type)
	}
	stopBeat()
	status, reason := StatusCompleted, ""
	cause := context.Cause(ctx)
	var f *failure
	switch {
	case err == nil:
	case errors.Is(cause, errCancelled):
		status, reason = StatusCancelled, "Cancelled"+progress.stoppedAt(rec)
	case errors.Is(cause, errShutdown):
		status, reason = StatusFailed, "Outpost shut down while the job ran"+progress.stoppedAt(rec)+" Rerun the job."
	case errors.As(err, &f):
		status, reason = StatusFailed, f.reason+progress.partial(rec)
	default:
		log.Error("job failed", "err", err)
		status, reason = StatusFailed, sprintf("The job failed inside Outpost: %v. Rerun it; see the Outpost log if it persists.%s", err, progress.partial(rec))
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := r.finish(fctx, rec, status, reason, func(c *record) bool { return !c.Status.Final() }); err != nil && !errors.Is(err, errSkip) {
		log.Error("record job result", "err", err)
	}
	log.Info("job finished", "status", status, "reason", reason)
}

// finish records a final state if cond still holds, and frees the hub.
func (r *Runner) finish(ctx context.Context, rec record, status Status, reason string, cond func(*record) bool) (record, error) {
	out, err := r.records.update(ctx, rec.Hub, rec.JobID, func(c *record) error {
		if !cond(c) {
			return errSkip
		}
		now := r.cfg.Now().UTC()
		c.Status, c.FailureReason, c.EndTimeUTC, c.InFlight = status, reason, &now, 0
		if status == StatusCompleted {
			c.Progress = 100
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	return out, r.records.release(ctx, rec.Hub, rec.JobID)
}

// heartbeat refreshes the record until stopped, and turns a cancel asked
// on another node into this job's cancellation.
func (r *Runner) heartbeat(ctx context.Context, rec record) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c, err := r.records.update(ctx, rec.Hub, rec.JobID, func(c *record) error {
				c.Heartbeat = r.cfg.Now().UTC()
				return nil
			})
			if err != nil {
				continue
			}
			if c.CancelRequested {
				r.mu.Lock()
				if cancel := r.running[jobKey(rec.Hub, rec.JobID)]; cancel != nil {
					cancel(errCancelled)
				}
				r.mu.Unlock()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// checkpoint records progress after a committed batch; it reports a cancel
// asked on another node.
func (r *Runner) checkpoint(ctx context.Context, rec record, fn func(*record)) (cancelled bool, err error) {
	c, err := r.records.update(context.WithoutCancel(ctx), rec.Hub, rec.JobID, func(c *record) error {
		fn(c)
		c.Heartbeat = r.cfg.Now().UTC()
		return nil
	})
	return c.CancelRequested, err
}

// jobProgress is what a job did before it stopped, for the final reason.
type jobProgress struct {
	applied  int64 // import: input lines committed
	written  int64 // export: devices written
	errorLog bool  // importErrors.log uploaded
}

func (p *jobProgress) stoppedAt(rec record) string {
	if p == nil {
		return " before it did anything."
	}
	if rec.Type == TypeImport {
		if p.applied == 0 {
			return " before any line of " + rec.InputBlobName + " was applied."
		}
		return sprintf(" after applying lines 1–%d of %s; the rest were not applied.", p.applied, rec.InputBlobName)
	}
	return " before " + rec.OutputBlobName + " was written; nothing was exported."
}

func (p *jobProgress) partial(rec record) string {
	if p == nil || rec.Type != TypeImport || p.applied == 0 {
		return ""
	}
	return sprintf(" Lines 1–%d of %s were applied before it stopped.", p.applied, rec.InputBlobName)
}

// errorCode renders a registry error as an importErrors.log code.
func errorCode(err error) (string, string) {
	var e *registry.Error
	if errors.As(err, &e) {
		return e.Code, e.Message
	}
	if errors.Is(err, store.ErrNotFound) {
		return "DeviceNotFound", "The device of this module does not exist; create the device first (an earlier line may create it)."
	}
	return "ServerError", err.Error()
}

// httpStatus is the status a request error carries.
func httpStatus(err error) int {
	var e *registry.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}
