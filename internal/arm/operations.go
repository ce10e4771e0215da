package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/store"
)

// Operation kinds, stored so a restarted node knows how to resume them.
const (
	opPut         = "put"
	opDelete      = "delete"
	opDeleteGroup = "deleteGroup"
)

// storedError is the operation error as stored: the wire body plus the HTTP
// status the Location poll answers with.
type storedError struct {
	ErrorBody
	Status int `json:"status"`
}

func (s *Service) startOperation(ctx context.Context, resourceID, kind string) (store.Operation, error) {
	op := store.Operation{
		ID: newOperationID(), ResourceID: resourceID, Kind: kind,
		Status: "Accepted", StartTime: s.now().UTC(),
	}
	if s.created != nil {
		s.created(&op)
	}
	if err := s.store.Operations().Create(ctx, op); err != nil {
		return store.Operation{}, fmt.Errorf("arm: start operation: %w", err)
	}
	return op, nil
}

// finishOperation records the outcome of an operation.
func (s *Service) finishOperation(ctx context.Context, id string, opErr error) {
	_, err := s.store.Operations().Update(ctx, id, func(op *store.Operation) error {
		op.EndTime = s.now().UTC()
		if opErr == nil {
			op.Status = "Succeeded"
			return nil
		}
		ae := AsError(opErr)
		b, _ := json.Marshal(storedError{ErrorBody: ae.Body(), Status: ae.Status})
		op.Status, op.Error = "Failed", b
		if errors.Is(opErr, ErrCanceled) {
			op.Status = "Canceled"
		}
		return nil
	})
	if err != nil {
		s.log.Error("record operation outcome", "operation", id, "err", err)
	}
}

// GetOperation returns an operation and, when it failed, its error.
func (s *Service) GetOperation(ctx context.Context, id string) (store.Operation, *Error, error) {
	op, err := s.store.Operations().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Operation{}, nil, Errorf(404, "OperationNotFound", "The operation '%s' was not found.", id)
	}
	if err != nil {
		return store.Operation{}, nil, fmt.Errorf("arm: get operation: %w", err)
	}
	if op.Status != "Failed" || len(op.Error) == 0 {
		return op, nil, nil
	}
	var se storedError
	if err := json.Unmarshal(op.Error, &se); err != nil {
		return op, nil, fmt.Errorf("arm: decode operation error: %w", err)
	}
	ae := &Error{Status: se.Status, Code: se.Code, Message: se.Message, Target: se.Target}
	for _, d := range se.Details {
		ae.Details = append(ae.Details, Error{Code: d.Code, Message: d.Message, Target: d.Target})
	}
	return op, ae, nil
}

// execute carries out an operation; it is safe to run again after a crash.
func (s *Service) execute(ctx context.Context, op store.Operation) error {
	if _, err := s.store.Operations().Update(ctx, op.ID, func(o *store.Operation) error {
		o.Status = "Running"
		return nil
	}); err != nil {
		return fmt.Errorf("arm: operation %s: %w", op.ID, err)
	}
	switch op.Kind {
	case opDeleteGroup, opDelete:
		return s.deleteTree(ctx, op.ResourceID)
	case opPut:
		res, err := s.store.Resources().Get(ctx, op.ResourceID)
		if err != nil {
			return fmt.Errorf("arm: operation %s: %w", op.ID, err)
		}
		rt, ok := s.registry.Lookup(res.Type)
		if !ok {
			return fmt.Errorf("arm: operation %s: unknown type %s", op.ID, res.Type)
		}
		_, err = s.provision(ctx, rt, res)
		if err != nil {
			state := "Failed"
			if errors.Is(err, ErrCanceled) {
				state = "Canceled"
			}
			s.markState(ctx, res.ID, state)
		}
		return err
	}
	return fmt.Errorf("arm: operation %s: unknown kind %q", op.ID, op.Kind)
}

// markState sets provisioningState Failed (or Canceled) on a resource
// whose Provision failed (or was canceled).
func (s *Service) markState(ctx context.Context, id, state string) {
	_, _, err := s.store.Resources().Put(ctx, id, func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, store.ErrNotFound
		}
		doc, err := ParseDocument(cur.Body)
		if err != nil {
			return store.Resource{}, err
		}
		setProvisioningState(doc, state)
		next := *cur
		next.Body = doc.Bytes()
		return next, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("mark resource failed", "resource", id, "err", err)
	}
}

// OperationRunner executes long-running operations in the background. Run
// owns its goroutines; it first resumes operations left unfinished by a
// previous process.
//
// Several nodes share the operations table: a node runs an operation only
// while it holds the operation's lease (owner and lease-until, renewed
// every ten seconds, lapsing after thirty), so a node that starts does not re-run what a live node
// is running, and an operation whose node died is taken over, by the
// periodic sweep, once its lease lapses.
type OperationRunner struct {
	svc   *Service
	log   *slog.Logger
	queue chan string
	node  string
	// A lease lapses ttl after its last renewal, renewed every renew; the
	// runner sweeps for lapsed ones every sweep.
	ttl, renewEvery, sweepEvery time.Duration

	mu      sync.Mutex
	running map[string]bool
	// pending are operations this node created whose PUT has not handed
	// them over yet (the resource may not be written): no sweep starts
	// them, and they are claimed for this node from the start.
	pending map[string]bool
}

// errNotOurs ends a claim that another node holds, or that finished.
var errNotOurs = errors.New("arm: operation held elsewhere or finished")

// NewOperationRunner attaches a runner to svc: from now on svc hands every
// new operation to it. node names this node in leases; it should survive a
// restart of the node (kept in its data directory), so a restarted node
// resumes its own operations at once instead of waiting for their leases to
// lapse. Empty picks a random one.
func NewOperationRunner(svc *Service, node string, log *slog.Logger) *OperationRunner {
	if node == "" {
		node = uuid.NewString()
	}
	r := &OperationRunner{svc: svc, log: log, queue: make(chan string, 1024), node: node, running: map[string]bool{}, pending: map[string]bool{},
		ttl: 30 * time.Second, renewEvery: 10 * time.Second, sweepEvery: 10 * time.Second}
	svc.created = func(op *store.Operation) {
		op.Owner, op.LeaseUntil = r.node, time.Now().Add(r.ttl)
		r.mu.Lock()
		r.pending[op.ID] = true
		r.mu.Unlock()
	}
	svc.enqueue = func(id string) {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		select {
		case r.queue <- id:
		default:
			// The queue is full: the operation stays Accepted in the store and
			// the next sweep picks it up; log so it is visible.
			log.Warn("operation queue full; the next sweep will start it", "operation", id)
		}
	}
	return r
}

// claim takes or renews the operation's lease for this node.
func (r *OperationRunner) claim(ctx context.Context, id string) (store.Operation, bool, error) {
	now := time.Now()
	op, err := r.svc.store.Operations().Update(ctx, id, func(op *store.Operation) error {
		if op.Terminal() || (op.Owner != "" && op.Owner != r.node && op.LeaseUntil.After(now)) {
			return errNotOurs
		}
		op.Owner, op.LeaseUntil = r.node, now.Add(r.ttl)
		return nil
	})
	if errors.Is(err, errNotOurs) || errors.Is(err, store.ErrNotFound) {
		return store.Operation{}, false, nil
	}
	if err != nil {
		return store.Operation{}, false, err
	}
	return op, true, nil
}

// release gives the lease up (shutting down), so another node need not
// wait for it to lapse.
func (r *OperationRunner) release(ctx context.Context, id string) {
	_, err := r.svc.store.Operations().Update(ctx, id, func(op *store.Operation) error {
		if op.Owner != r.node || op.Terminal() {
			return errNotOurs
		}
		op.Owner, op.LeaseUntil = "", time.Time{}
		return nil
	})
	if err != nil && !errors.Is(err, errNotOurs) && !errors.Is(err, store.ErrNotFound) {
		r.log.Warn("release operation lease", "operation", id, "err", err)
	}
}

// Run executes queued operations until ctx is done, then waits for the ones
// in flight.
func (r *OperationRunner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(id string) {
		r.mu.Lock()
		if r.running[id] {
			r.mu.Unlock()
			return
		}
		r.running[id] = true
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				r.mu.Lock()
				delete(r.running, id)
				r.mu.Unlock()
			}()
			op, ok, err := r.claim(ctx, id)
			if err != nil {
				r.log.Error("claim operation", "operation", id, "err", err)
				return
			}
			if !ok {
				return
			}
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			go r.renew(runCtx, id)
			err = r.svc.execute(ctx, op)
			if ctx.Err() != nil {
				// Shutting down: leave it unfinished, for this node's next
				// start or another node right away.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				r.release(rctx, id)
				cancel()
				return
			}
			if err != nil {
				r.log.Warn("operation failed", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID, "err", err)
			}
			r.svc.finishOperation(context.WithoutCancel(ctx), op.ID, err)
		}()
	}
	sweep := func() error {
		pending, err := r.svc.store.Operations().ListUnfinished(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		unfinished := make(map[string]bool, len(pending))
		for _, op := range pending {
			unfinished[op.ID] = true
			r.mu.Lock()
			inFlight := r.pending[op.ID]
			r.mu.Unlock()
			if inFlight && op.Owner == r.node {
				// A long Prepare: keep the lease so no other node sweeps it.
				if _, _, err := r.claim(ctx, op.ID); err != nil && ctx.Err() == nil {
					r.log.Warn("renew operation lease", "operation", op.ID, "err", err)
				}
				continue
			}
			if !r.sweepable(op, now) {
				continue
			}
			if op.Owner != "" && op.Owner != r.node {
				r.log.Info("taking over an operation whose node stopped renewing it", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID, "owner", op.Owner)
			} else {
				r.log.Info("resuming operation", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID)
			}
			start(op.ID)
		}
		r.mu.Lock()
		for id := range r.pending {
			if !unfinished[id] {
				delete(r.pending, id) // its PUT failed: finished without a hand-over
			}
		}
		r.mu.Unlock()
		return nil
	}
	if err := sweep(); err != nil {
		return fmt.Errorf("arm: resume operations: %w", err)
	}
	t := time.NewTicker(r.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-r.queue:
			start(id)
		case <-t.C:
			if err := sweep(); err != nil && ctx.Err() == nil {
				r.log.Warn("sweep operations", "err", err)
			}
		}
	}
}

// sweepable reports whether a sweep should start an unfinished operation:
// this node's own unless its PUT is still in flight here (the operation is
// recorded, and claimed, before the resource is written, and Prepare can
// take a while: running it then would provision the old document and write
// it over the new one), one whose holder's lease lapsed, or one nobody
// claimed for two lease periods. After a restart nothing is in flight, so
// the node resumes its own at once.
func (r *OperationRunner) sweepable(op store.Operation, now time.Time) bool {
	switch {
	case op.Owner == r.node:
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.pending[op.ID]
	case op.Owner != "":
		return !op.LeaseUntil.After(now)
	}
	return now.Sub(op.StartTime) >= 2*r.ttl
}

// renew extends the lease until ctx ends.
func (r *OperationRunner) renew(ctx context.Context, id string) {
	t := time.NewTicker(r.renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, ok, err := r.claim(ctx, id); err != nil && ctx.Err() == nil {
				r.log.Warn("renew operation lease", "operation", id, "err", err)
			} else if !ok && ctx.Err() == nil {
				return // finished, or (after a long stall) taken over
			}
		}
	}
}
