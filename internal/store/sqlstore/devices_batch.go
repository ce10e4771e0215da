package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// PutMany is the registry's bulk import. One transaction per call; in it, a
// few SELECTs load every entry the batch names (and the device of every
// module it names), then the entries apply in input order, each with at
// most one statement prepared once per batch. Decisions the contract leaves
// open:
//
//   - Entries apply one after another, as separate calls would: an entry
//     sees what earlier entries of the batch did to its key, so a module
//     may follow its device's create in the same batch, but not precede it
//     (its entry then fails with ErrNotFound).
//   - The updater's error is recorded for its entry unchanged; errors the
//     store finds in an entry (an empty device id, a module of a missing
//     device, an updater that returns another key) are wrapped.
//   - A returned entry's Hub, DeviceID and ModuleID may be left empty; they
//     are taken from the key. Returning nil for an absent entry does
//     nothing and is no error.
//   - In PostgreSQL, when a concurrent writer creates one of the batch's
//     keys first, or the batch deadlocks with another one, the whole batch
//     runs again (as Resources.Put does): the updater may then be called
//     again for every entry, so it must not count on being called once.
//
// The updater runs inside the write transaction and must not call the
// Store.
func (ds devices) PutMany(ctx context.Context, hub string, keys []store.DeviceKey, update func(i int, current *store.Device) (*store.Device, error)) ([]error, error) {
	hub = store.Key(hub)
	if hub == "" {
		return nil, fmt.Errorf("sqlstore: put devices: %w", errEmptyHub)
	}
	if len(keys) == 0 {
		return []error{}, nil
	}
	for attempt := 1; ; attempt++ {
		errs, err := ds.putMany(ctx, hub, keys, update)
		if (errors.Is(err, errLostCreateRace) || ds.s.dialect.retryable(err)) && attempt < putAttempts {
			ds.s.log.Debug("retrying device batch", "hub", hub, "entries", len(keys), "attempt", attempt, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlstore: put %d devices in %s: %w", len(keys), hub, err)
		}
		return errs, nil
	}
}

// putMany is one attempt of PutMany.
func (ds devices) putMany(ctx context.Context, hub string, keys []store.DeviceKey, update func(i int, current *store.Device) (*store.Device, error)) ([]error, error) {
	errs := make([]error, len(keys))
	err := ds.s.inTx(ctx, func(tx *sql.Tx) error {
		b := &deviceBatch{ctx: ctx, tx: tx, dialect: ds.s.dialect, hub: hub, now: now()}
		if err := b.load(keys); err != nil {
			return err
		}
		for i, k := range keys {
			if k.DeviceID == "" {
				errs[i] = fmt.Errorf("sqlstore: put device %s: empty device id", deviceName(hub, k.DeviceID, k.ModuleID))
				continue
			}
			var current *store.Device
			if stored := b.entries[k]; stored != nil {
				c := cloneDevice(*stored)
				current = &c
			}
			next, err := update(i, current)
			if err != nil {
				errs[i] = err
				continue
			}
			if errs[i], err = b.put(k, next); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// deviceLoadChunk is how many keys one of PutMany's loading SELECTs names:
// two parameters each, far below PostgreSQL's limit of 65,535 and SQLite's
// of 32,766, and enough that a batch of 1,000 loads in a few round trips.
const deviceLoadChunk = 500

// deviceBatch is one attempt of PutMany inside its transaction.
type deviceBatch struct {
	ctx     context.Context
	tx      *sql.Tx
	dialect dialect
	hub     string
	// now stamps every write: the batch commits as one.
	now time.Time
	// entries holds every key the batch names and the device key of every
	// module it names, as stored so far in this transaction: nil when
	// absent.
	entries map[store.DeviceKey]*store.Device
	// modules lists the batch's module keys by device id, so that deleting
	// a device also forgets its modules.
	modules map[string][]store.DeviceKey
	// Statements are prepared on first use and closed with the
	// transaction. Preparing matters for SQLite, which would otherwise
	// compile each statement again for every entry.
	insert, update, deleteDevice, deleteModule *sql.Stmt
}

// load reads every entry the batch may need, locking the rows in
// PostgreSQL. The keys are sorted, and each SELECT locks in its ORDER BY, so
// two batches over the same keys lock them in the same order.
func (b *deviceBatch) load(keys []store.DeviceKey) error {
	b.entries = make(map[store.DeviceKey]*store.Device, len(keys))
	b.modules = map[string][]store.DeviceKey{}
	for _, k := range keys {
		if _, seen := b.entries[k]; seen || k.DeviceID == "" {
			continue
		}
		b.entries[k] = nil
		if k.ModuleID != "" {
			b.entries[store.DeviceKey{DeviceID: k.DeviceID}] = nil
			b.modules[k.DeviceID] = append(b.modules[k.DeviceID], k)
		}
	}
	sorted := slices.SortedFunc(maps.Keys(b.entries), func(x, y store.DeviceKey) int {
		if c := strings.Compare(x.DeviceID, y.DeviceID); c != 0 {
			return c
		}
		return strings.Compare(x.ModuleID, y.ModuleID)
	})
	for chunk := range slices.Chunk(sorted, deviceLoadChunk) {
		query, args := deviceLoadQuery(b.dialect, b.hub, chunk)
		rows, err := b.tx.QueryContext(b.ctx, query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return err
			}
			b.entries[store.DeviceKey{DeviceID: d.DeviceID, ModuleID: d.ModuleID}] = &d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// deviceLoadQuery selects the entries of hub with the given keys. The keys
// are a VALUES list joined to the table: both databases then look each one
// up in the primary key's index, where SQLite would scan the whole hub for
// a (device_id, module_id) IN (VALUES …) test.
func deviceLoadQuery(d dialect, hub string, keys []store.DeviceKey) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 1+2*len(keys))
	args = append(args, hub)
	b.WriteString(`SELECT ` + deviceColumns + ` FROM (VALUES `)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		b.WriteString("($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ")")
		args = append(args, k.DeviceID, k.ModuleID)
	}
	b.WriteString(`) AS k JOIN devices ON hub = $1 AND device_id = k.column1 AND module_id = k.column2
		ORDER BY device_id, module_id` + d.forUpdateOf("devices"))
	return b.String(), args
}

// exec runs query through the statement *stmt, preparing it on first use.
func (b *deviceBatch) exec(stmt **sql.Stmt, query string, args ...any) (sql.Result, error) {
	if *stmt == nil {
		s, err := b.tx.PrepareContext(b.ctx, query)
		if err != nil {
			return nil, err
		}
		*stmt = s
	}
	return (*stmt).ExecContext(b.ctx, args...)
}

// put stores next, the updater's answer for k. entryErr is what the entry
// did wrong; err is a failure of the whole batch.
func (b *deviceBatch) put(k store.DeviceKey, next *store.Device) (entryErr, err error) {
	name := deviceName(b.hub, k.DeviceID, k.ModuleID)
	current := b.entries[k]
	if next == nil {
		if current == nil {
			return nil, nil
		}
		return nil, b.delete(k)
	}
	if (next.Hub != "" && store.Key(next.Hub) != b.hub) || (next.DeviceID != "" && next.DeviceID != k.DeviceID) ||
		(next.ModuleID != "" && next.ModuleID != k.ModuleID) {
		return fmt.Errorf("sqlstore: put device %s: updater returned %s", name,
			deviceName(next.Hub, next.DeviceID, next.ModuleID)), nil
	}
	// The batch keeps its own copy: callers may reuse what they returned.
	d := cloneDevice(*next)
	d.Hub, d.DeviceID, d.ModuleID = b.hub, k.DeviceID, k.ModuleID

	if current != nil {
		if settleUpdate(&d, current, b.now) {
			if _, err := b.exec(&b.update, deviceUpdateQuery, updateArgs(&d)...); err != nil {
				return nil, err
			}
		}
		b.entries[k] = &d
		return nil, nil
	}

	if k.ModuleID != "" && b.entries[store.DeviceKey{DeviceID: k.DeviceID}] == nil {
		return fmt.Errorf("sqlstore: put device %s: device %s: %w", name, k.DeviceID, store.ErrNotFound), nil
	}
	settleCreate(&d, b.now)
	res, err := b.exec(&b.insert, deviceInsertQuery, insertArgs(&d)...)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		// The load found no row, so another transaction created it since.
		return nil, fmt.Errorf("%s: %w", name, errLostCreateRace)
	}
	b.entries[k] = &d
	return nil, nil
}

// delete removes k's entry, and a device's modules with it.
func (b *deviceBatch) delete(k store.DeviceKey) error {
	b.entries[k] = nil
	if k.ModuleID != "" {
		_, err := b.exec(&b.deleteModule, moduleDeleteQuery, b.hub, k.DeviceID, k.ModuleID)
		return err
	}
	for _, m := range b.modules[k.DeviceID] {
		b.entries[m] = nil
	}
	_, err := b.exec(&b.deleteDevice, deviceDeleteQuery, b.hub, k.DeviceID)
	return err
}
