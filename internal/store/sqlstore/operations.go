package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/outpost-iot/outpost/internal/store"
)

// operations implements store.Operations. The terminal column mirrors
// Operation.Terminal so that the list of states lives in Go alone and a
// partial index serves ListUnfinished.
type operations struct{ s *Store }

const operationColumns = `id, resource_id, kind, status, error, start_time, end_time, input, owner, lease_until`

func scanOperation(row rowScanner) (store.Operation, error) {
	var (
		op               store.Operation
		opErr, input     sql.NullString
		startAt, endedAt int64
		leaseUntil       int64
	)
	err := row.Scan(&op.ID, &op.ResourceID, &op.Kind, &op.Status, &opErr, &startAt, &endedAt, &input, &op.Owner, &leaseUntil)
	op.LeaseUntil = fromMicros(leaseUntil)
	op.Error = jsonValue(opErr)
	op.Input = jsonValue(input)
	op.StartTime = fromMicros(startAt)
	op.EndTime = fromMicros(endedAt)
	return op, err
}

func terminalArg(op store.Operation) int {
	if op.Terminal() {
		return 1
	}
	return 0
}

func (o operations) Create(ctx context.Context, op store.Operation) error {
	if op.ID == "" {
		return errors.New("sqlstore: create operation: empty id")
	}
	res, err := o.s.writer.ExecContext(ctx, `INSERT INTO operations (`+operationColumns+`, terminal)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO NOTHING`,
		op.ID, op.ResourceID, op.Kind, op.Status, jsonArg(op.Error),
		toMicros(op.StartTime), toMicros(op.EndTime), jsonArg(op.Input), op.Owner, toMicros(op.LeaseUntil), terminalArg(op))
	if err != nil {
		return fmt.Errorf("sqlstore: create operation %s: %w", op.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: create operation %s: %w", op.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create operation %s: %w", op.ID, store.ErrAlreadyExists)
	}
	return nil
}

func (o operations) Get(ctx context.Context, id string) (store.Operation, error) {
	op, err := scanOperation(o.s.db.QueryRowContext(ctx,
		`SELECT `+operationColumns+` FROM operations WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Operation{}, fmt.Errorf("sqlstore: get operation %s: %w", id, err)
	}
	return op, nil
}

func (o operations) Update(ctx context.Context, id string, update func(op *store.Operation) error) (store.Operation, error) {
	var op store.Operation
	err := o.s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		op, err = scanOperation(tx.QueryRowContext(ctx,
			`SELECT `+operationColumns+` FROM operations WHERE id = $1`+o.s.dialect.forUpdate, id))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := update(&op); err != nil {
			return err
		}
		// The id is the row's identity, not a field the updater may move.
		op.ID = id
		_, err = tx.ExecContext(ctx, `UPDATE operations SET
			resource_id = $2, kind = $3, status = $4, error = $5,
			start_time = $6, end_time = $7, input = $8, owner = $9, lease_until = $10, terminal = $11
			WHERE id = $1`,
			op.ID, op.ResourceID, op.Kind, op.Status, jsonArg(op.Error),
			toMicros(op.StartTime), toMicros(op.EndTime), jsonArg(op.Input), op.Owner, toMicros(op.LeaseUntil), terminalArg(op))
		return err
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("sqlstore: update operation %s: %w", id, err)
	}
	// Hand back what a Get would read, not the updater's finer clock.
	op.StartTime = fromMicros(toMicros(op.StartTime))
	op.EndTime = fromMicros(toMicros(op.EndTime))
	op.LeaseUntil = fromMicros(toMicros(op.LeaseUntil))
	return op, nil
}

func (o operations) ListUnfinished(ctx context.Context) ([]store.Operation, error) {
	return queryAll(ctx, o.s.db, "list unfinished operations", scanOperation,
		`SELECT `+operationColumns+` FROM operations WHERE terminal = 0 ORDER BY start_time, id`)
}
