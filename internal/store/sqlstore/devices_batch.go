package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// PutMany is the registry's bulk import, in one transaction per call:
//
//  1. A few SELECTs load every entry the batch names, and the device of
//     every module it names, locking them in PostgreSQL.
//  2. The entries apply in input order to that loaded view, in memory.
//  3. The net changes are written in key order: deletes, then changed and
//     new entries as multi-row INSERTs (upserts for the changed ones).
//
// Writing in key order rather than input order is what keeps concurrent
// batches in PostgreSQL from deadlocking: every batch takes its row locks in
// the same order, whatever order its entries came in. Decisions the
// contract leaves open:
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
//     keys first (or the batch deadlocks with a single-entry write), the
//     whole batch runs again, as Resources.Put does: the updater may then be
//     called again for every entry, so it must not count on one call.
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
		if plans := ds.s.dialect.customPlans; plans != "" {
			if _, err := tx.ExecContext(ctx, plans); err != nil {
				return err
			}
		}
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
			if entry := b.entries[k]; entry != nil {
				c := cloneDevice(*entry)
				current = &c
			}
			next, err := update(i, current)
			if err != nil {
				errs[i] = err
				continue
			}
			errs[i] = b.apply(k, next)
		}
		return b.write()
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
	// keys are the keys of entries in key order.
	keys []store.DeviceKey
	// stored holds every key the batch names and the device key of every
	// module it names, as loaded: nil when absent.
	stored map[store.DeviceKey]*store.Device
	// entries holds the same keys as the entries so far applied leave
	// them. An entry is the same pointer as in stored until it changes.
	entries map[store.DeviceKey]*store.Device
	// modules lists the batch's module keys by device id, so that deleting
	// a device also forgets its modules.
	modules map[string][]store.DeviceKey
	// wiped holds the ids of stored devices the batch deleted: their rows
	// and all their modules' rows go before anything else is written.
	wiped map[string]bool
}

// load reads every entry the batch may need, locking the rows in
// PostgreSQL. Each SELECT locks in its ORDER BY, over keys in order.
func (b *deviceBatch) load(keys []store.DeviceKey) error {
	b.stored = make(map[store.DeviceKey]*store.Device, len(keys))
	b.modules = map[string][]store.DeviceKey{}
	b.wiped = map[string]bool{}
	for _, k := range keys {
		if _, seen := b.stored[k]; seen || k.DeviceID == "" {
			continue
		}
		b.stored[k] = nil
		if k.ModuleID != "" {
			b.stored[store.DeviceKey{DeviceID: k.DeviceID}] = nil
			b.modules[k.DeviceID] = append(b.modules[k.DeviceID], k)
		}
	}
	b.keys = slices.SortedFunc(maps.Keys(b.stored), func(x, y store.DeviceKey) int {
		if c := strings.Compare(x.DeviceID, y.DeviceID); c != 0 {
			return c
		}
		return strings.Compare(x.ModuleID, y.ModuleID)
	})
	for chunk := range slices.Chunk(b.keys, deviceLoadChunk) {
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
			b.stored[store.DeviceKey{DeviceID: d.DeviceID, ModuleID: d.ModuleID}] = &d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	b.entries = maps.Clone(b.stored)
	return nil
}

// deviceLoadQuery selects the entries of hub with the given keys: a VALUES
// list joined to the table, so that each key is one lookup in the primary
// key's index. CROSS JOIN makes SQLite keep the VALUES list as the outer
// loop; otherwise it may prefer scanning the whole hub in index order to
// save sorting for the ORDER BY (PostgreSQL needs that ORDER BY for its lock
// order, and plans a CROSS JOIN like any inner join).
func deviceLoadQuery(d dialect, hub string, keys []store.DeviceKey) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(keys)+1)
	b.WriteString(`SELECT ` + deviceColumns + ` FROM (VALUES `)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		args = append(args, k.DeviceID, k.ModuleID)
		b.WriteString("(" + d.param(len(args)-1) + ", " + d.param(len(args)) + ")")
	}
	args = append(args, hub)
	b.WriteString(`) AS k CROSS JOIN devices WHERE hub = ` + d.param(len(args)) +
		` AND device_id = k.column1 AND module_id = k.column2 ORDER BY device_id, module_id` + d.forUpdateOf("devices"))
	return b.String(), args
}

// apply makes next, the updater's answer for k, k's entry; it returns what
// was wrong with the entry.
func (b *deviceBatch) apply(k store.DeviceKey, next *store.Device) error {
	name := deviceName(b.hub, k.DeviceID, k.ModuleID)
	current := b.entries[k]
	if next == nil {
		if current == nil {
			return nil
		}
		b.entries[k] = nil
		if k.ModuleID == "" {
			for _, m := range b.modules[k.DeviceID] {
				b.entries[m] = nil
			}
			if b.stored[k] != nil {
				b.wiped[k.DeviceID] = true
			}
		}
		return nil
	}
	if (next.Hub != "" && store.Key(next.Hub) != b.hub) || (next.DeviceID != "" && next.DeviceID != k.DeviceID) ||
		(next.ModuleID != "" && next.ModuleID != k.ModuleID) {
		return fmt.Errorf("sqlstore: put device %s: updater returned %s", name,
			deviceName(next.Hub, next.DeviceID, next.ModuleID))
	}
	// The batch keeps its own copy: callers may reuse what they returned.
	d := cloneDevice(*next)
	d.Hub, d.DeviceID, d.ModuleID = b.hub, k.DeviceID, k.ModuleID
	switch {
	case current != nil:
		if settleUpdate(&d, current, b.now) {
			b.entries[k] = &d
		}
	case k.ModuleID != "" && b.entries[store.DeviceKey{DeviceID: k.DeviceID}] == nil:
		return fmt.Errorf("sqlstore: put device %s: device %s: %w", name, k.DeviceID, store.ErrNotFound)
	default:
		settleCreate(&d, b.now)
		b.entries[k] = &d
	}
	return nil
}

// write stores what the batch changed, in key order: the rows of wiped
// devices go first, then deleted modules, then changed entries and last new
// ones, deviceRows to a statement.
func (b *deviceBatch) write() error {
	for _, id := range slices.Sorted(maps.Keys(b.wiped)) {
		if _, err := b.tx.ExecContext(b.ctx, deviceDeleteQuery, b.hub, id); err != nil {
			return err
		}
	}
	var (
		removals         *sql.Stmt
		changed, created []*store.Device
	)
	for _, k := range b.keys {
		entry, stored := b.entries[k], b.stored[k]
		if b.wiped[k.DeviceID] {
			stored = nil
		}
		switch {
		case entry == nil && stored != nil:
			// Only a module gets here: a stored device's delete wiped it.
			// Prepared once, since SQLite would compile it for every row.
			var err error
			if removals == nil {
				removals, err = b.tx.PrepareContext(b.ctx, moduleDeleteQuery)
			}
			if err == nil {
				_, err = removals.ExecContext(b.ctx, b.hub, k.DeviceID, k.ModuleID)
			}
			if err != nil {
				return err
			}
		case entry != nil && stored == nil:
			created = append(created, entry)
		case entry != stored:
			changed = append(changed, entry)
		}
	}
	if err := b.writeRows(changed, deviceReplaceConflict); err != nil {
		return err
	}
	return b.writeRows(created, deviceCreateConflict)
}

// deviceRows is how many rows one of PutMany's INSERTs writes: ten
// parameters each, within both databases' limits. Fewer statements save
// PostgreSQL round trips; BenchmarkDevicePutMany found little to gain
// beyond this.
const deviceRows = 100

// How PutMany's INSERTs treat rows that exist. Changed entries replace their
// stored rows, which the batch holds locked, as an upsert: multi-row like
// the inserts of new entries, and the same statement in both databases.
// New entries must not find a row: when one does, a concurrent writer
// created it since the load, and the row count tells.
const (
	deviceCreateConflict  = ` ON CONFLICT (hub, device_id, module_id) DO NOTHING`
	deviceReplaceConflict = ` ON CONFLICT (hub, device_id, module_id) DO UPDATE SET
		enabled = excluded.enabled, identity = excluded.identity, twin = excluded.twin,
		etag = excluded.etag, twin_etag = excluded.twin_etag,
		created_at = excluded.created_at, updated_at = excluded.updated_at`
)

// writeRows inserts entries, deviceRows to a statement, with the given
// conflict clause.
func (b *deviceBatch) writeRows(entries []*store.Device, conflict string) error {
	var full *sql.Stmt
	args := make([]any, 0, deviceRows*deviceColumnCount)
	for chunk := range slices.Chunk(entries, deviceRows) {
		args = args[:0]
		for _, d := range chunk {
			args = appendDeviceArgs(args, d)
		}
		var (
			res sql.Result
			err error
		)
		if len(chunk) == deviceRows {
			if full == nil {
				if full, err = b.tx.PrepareContext(b.ctx, deviceRowsQuery(b.dialect, deviceRows, conflict)); err != nil {
					return err
				}
			}
			res, err = full.ExecContext(b.ctx, args...)
		} else {
			res, err = b.tx.ExecContext(b.ctx, deviceRowsQuery(b.dialect, len(chunk), conflict), args...)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != int64(len(chunk)) && conflict == deviceCreateConflict {
			return errLostCreateRace
		}
	}
	return nil
}

// deviceRowsQuery is an INSERT of rows entries.
func deviceRowsQuery(d dialect, rows int, conflict string) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO devices (` + deviceColumns + `) VALUES `)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range deviceColumnCount {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString(d.param(r*deviceColumnCount + c + 1))
		}
		b.WriteByte(')')
	}
	b.WriteString(conflict)
	return b.String()
}

func (ds devices) AfterBulkLoad(ctx context.Context) error {
	if _, err := ds.s.writer.ExecContext(ctx, ds.s.dialect.afterBulkLoad); err != nil {
		return fmt.Errorf("sqlstore: maintenance after a bulk load (%s): %w", ds.s.dialect.afterBulkLoad, err)
	}
	return nil
}
