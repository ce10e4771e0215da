package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

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
type OperationRunner struct {
	svc   *Service
	log   *slog.Logger
	queue chan string
}

// NewOperationRunner attaches a runner to svc: from now on svc hands every
// new operation to it.
func NewOperationRunner(svc *Service, log *slog.Logger) *OperationRunner {
	r := &OperationRunner{svc: svc, log: log, queue: make(chan string, 1024)}
	svc.enqueue = func(id string) {
		select {
		case r.queue <- id:
		default:
			// The queue is full: the operation stays Accepted in the store and
			// the next Run (or resume) picks it up; log so it is visible.
			log.Warn("operation queue full; operation will resume on restart", "operation", id)
		}
	}
	return r
}

// Run executes queued operations until ctx is done, then waits for the ones
// in flight.
func (r *OperationRunner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(op store.Operation) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.svc.execute(ctx, op)
			if ctx.Err() != nil {
				return // shutting down: leave it unfinished so it resumes
			}
			if err != nil {
				r.log.Warn("operation failed", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID, "err", err)
			}
			r.svc.finishOperation(context.WithoutCancel(ctx), op.ID, err)
		}()
	}
	pending, err := r.svc.store.Operations().ListUnfinished(ctx)
	if err != nil {
		return fmt.Errorf("arm: resume operations: %w", err)
	}
	// An operation queued before Run started is also in pending; run it once.
	resumed := make(map[string]bool, len(pending))
	for _, op := range pending {
		r.log.Info("resuming operation", "operation", op.ID, "kind", op.Kind, "resource", op.ResourceID)
		resumed[op.ID] = true
		start(op)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-r.queue:
			if resumed[id] {
				delete(resumed, id)
				continue
			}
			op, err := r.svc.store.Operations().Get(ctx, id)
			if err != nil {
				r.log.Error("load operation", "operation", id, "err", err)
				continue
			}
			if !op.Terminal() {
				start(op)
			}
		}
	}
}
