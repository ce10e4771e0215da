package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// record is a job as kept in the bucket: the wire properties and what the
// runner needs to run, resume or judge it.
type record struct {
	Properties
	Hub           string `json:"hub"`
	HubResourceID string `json:"hubResourceId"`
	// Created orders listings.
	Created time.Time `json:"created"`
	// Checkpoint is how many input lines are committed to the registry.
	Checkpoint int64 `json:"checkpoint"`
	// InFlight is the last line of the batch being written, when one is:
	// on a crash, lines Checkpoint+1..InFlight may or may not be applied.
	InFlight int64 `json:"inFlight,omitempty"`
	// Heartbeat is refreshed by the node running the job; a running job
	// whose heartbeat is older than Config.StaleAfter lost its node.
	Heartbeat time.Time `json:"heartbeat"`
	Node      string    `json:"node,omitempty"`
	// CancelRequested asks the node running the job to stop.
	CancelRequested bool `json:"cancelRequested,omitempty"`
	// Lines and Errors count input lines read and refused so far.
	Lines  int64 `json:"lines,omitempty"`
	Errors int64 `json:"errors,omitempty"`
}

// records keeps jobs in a JetStream key-value bucket, so every node sees
// every job and claims and cancels are compare-and-set: "{hub}.{jobId}"
// per job and "{hub}.active" naming a hub's one active job.
type records struct {
	bus *bus.Bus

	mu sync.Mutex
	kv jetstream.KeyValue // created on first use
}

const casAttempts = 20

func (r *records) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	kv, err := r.bus.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      r.bus.Stream("iothub-jobs"),
		Description: "IoT Hub bulk import/export jobs",
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: job bucket: %w", err)
	}
	r.kv = kv
	return kv, nil
}

func jobKey(hub, id string) string { return strings.ToLower(hub) + ".j." + id }
func activeKey(hub string) string  { return strings.ToLower(hub) + ".active" }

func jobNotFound(id string) error {
	return &registry.Error{Status: http.StatusNotFound, Code: "JobNotFound", Message: sprintf("Job '%s' not found on this hub.", id)}
}

// validJobID keeps ids to what a bucket key can hold.
func validJobID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (r *records) get(ctx context.Context, hub, id string) (record, uint64, error) {
	if !validJobID(id) {
		return record{}, 0, jobNotFound(id)
	}
	kv, err := r.bucket(ctx)
	if err != nil {
		return record{}, 0, err
	}
	e, err := kv.Get(ctx, jobKey(hub, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, jobNotFound(id)
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("jobs: read job %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, 0, fmt.Errorf("jobs: decode job %s: %w", id, err)
	}
	return rec, e.Revision(), nil
}

// create stores a new job, refusing when the hub has an active one.
func (r *records) create(ctx context.Context, rec record) error {
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	for range casAttempts {
		if _, err := kv.Create(ctx, activeKey(rec.Hub), []byte(rec.JobID)); err == nil {
			break
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("jobs: claim hub %s: %w", rec.Hub, err)
		}
		e, err := kv.Get(ctx, activeKey(rec.Hub))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("jobs: read active job of %s: %w", rec.Hub, err)
		}
		active := string(e.Value())
		cur, _, gerr := r.get(ctx, rec.Hub, active)
		if gerr == nil && !cur.Status.Final() {
			return &registry.Error{Status: http.StatusConflict, Code: "JobQuotaExceeded",
				Message: sprintf("Hub %s already has an active import/export job (%s, %s); IoT Hub runs one at a time. Wait for it to finish, or cancel it with DELETE /jobs/%s.", rec.Hub, active, cur.Status, active)}
		}
		// The named job finished (or vanished) without releasing the hub:
		// take the claim over if nobody else did meanwhile.
		if _, err := kv.Update(ctx, activeKey(rec.Hub), []byte(rec.JobID), e.Revision()); err == nil {
			break
		}
	}
	b, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, jobKey(rec.Hub, rec.JobID), b); err != nil {
		_ = r.release(ctx, rec.Hub, rec.JobID)
		return fmt.Errorf("jobs: store job %s: %w", rec.JobID, err)
	}
	return nil
}

// release frees the hub for another job if jobID holds it.
func (r *records) release(ctx context.Context, hub, jobID string) error {
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	e, err := kv.Get(ctx, activeKey(hub))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobs: read active job of %s: %w", hub, err)
	}
	if string(e.Value()) != jobID {
		return nil
	}
	if err := kv.Delete(ctx, activeKey(hub), jetstream.LastRevision(e.Revision())); err != nil && !isConflict(err) {
		return fmt.Errorf("jobs: release hub %s: %w", hub, err)
	}
	return nil
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		strings.Contains(err.Error(), "wrong last sequence")
}

// update applies fn with compare-and-set, retrying on conflicts. fn may
// return errSkip to leave the record as it is.
func (r *records) update(ctx context.Context, hub, id string, fn func(*record) error) (record, error) {
	kv, err := r.bucket(ctx)
	if err != nil {
		return record{}, err
	}
	for range casAttempts {
		rec, rev, err := r.get(ctx, hub, id)
		if err != nil {
			return record{}, err
		}
		if err := fn(&rec); err != nil {
			return rec, err
		}
		b, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, jobKey(hub, id), b, rev); err == nil {
			return rec, nil
		} else if !isConflict(err) {
			return record{}, fmt.Errorf("jobs: update job %s: %w", id, err)
		}
	}
	return record{}, fmt.Errorf("jobs: update job %s: too many concurrent changes", id)
}

// errSkip makes update leave a record unchanged.
var errSkip = errors.New("jobs: no change")

// list returns the jobs of hub ("" for every hub), oldest first.
func (r *records) list(ctx context.Context, hub string) ([]record, error) {
	kv, err := r.bucket(ctx)
	if err != nil {
		return nil, err
	}
	filter := ">"
	if hub != "" {
		filter = strings.ToLower(hub) + ".j.*"
	}
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("jobs: list jobs: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		if strings.Contains(k, ".j.") {
			keys = append(keys, k)
		}
	}
	out := make([]record, 0, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jobs: read job %s: %w", k, err)
		}
		var rec record
		if json.Unmarshal(e.Value(), &rec) == nil {
			out = append(out, rec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}
