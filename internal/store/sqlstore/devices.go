package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// devices implements store.Devices: one row per device (empty module_id) or
// module, keyed by (hub, device_id, module_id). Decisions the contract
// leaves open:
//
//   - Hub names compare case-insensitively: every method stores and looks
//     up store.Key(hub), so Device.Hub reads back in lower case whatever
//     spelling was written. Device and module ids are compared as given.
//   - Enabled counts as part of the identity: changing it alone changes the
//     ETag, as the identity's status is where it comes from.
//   - An Update (or PutMany entry) that changes neither the identity, nor
//     Enabled, nor the twin writes nothing: etags and UpdatedAt stay.
//   - Create, and PutMany entries, ignore the etags and times the caller
//     sets; Update ignores what the updater sets there.
//   - List, Count, DeleteHub and PutMany refuse an empty hub rather than
//     answer for a hub no entry can belong to.
type devices struct{ s *Store }

const deviceColumns = `hub, device_id, module_id, enabled, identity, twin, etag, twin_etag, created_at, updated_at`

// Statements of the single-entry methods, some of which PutMany shares.
const (
	deviceGetQuery    = `SELECT ` + deviceColumns + ` FROM devices WHERE hub = $1 AND device_id = $2 AND module_id = $3`
	deviceInsertQuery = `INSERT INTO devices (` + deviceColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (hub, device_id, module_id) DO NOTHING`
	// deviceUpdateQuery takes its arguments in deviceColumns' order, as
	// deviceInsertQuery does, so that deviceArgs serves both.
	deviceUpdateQuery = `UPDATE devices SET
		enabled = $4, identity = $5, twin = $6, etag = $7, twin_etag = $8, created_at = $9, updated_at = $10
		WHERE hub = $1 AND device_id = $2 AND module_id = $3`
	// A device's row and its modules' rows share (hub, device_id): one
	// range of the primary key.
	deviceDeleteQuery = `DELETE FROM devices WHERE hub = $1 AND device_id = $2`
	moduleDeleteQuery = `DELETE FROM devices WHERE hub = $1 AND device_id = $2 AND module_id = $3`
	// deviceCountQuery repeats devices_enabled's WHERE term so that index
	// answers it alone.
	deviceCountQuery = `SELECT COUNT(*), COALESCE(SUM(enabled), 0) FROM devices WHERE hub = $1 AND module_id = ''`
)

// errEmptyHub refuses calls that name no hub.
var errEmptyHub = errors.New("empty hub name")

func scanDevice(row rowScanner) (store.Device, error) {
	var (
		d                  store.Device
		enabled            int64
		identity, twin     sql.NullString
		created, updatedAt int64
	)
	err := row.Scan(&d.Hub, &d.DeviceID, &d.ModuleID, &enabled, &identity, &twin,
		&d.ETag, &d.TwinETag, &created, &updatedAt)
	d.Enabled = enabled != 0
	d.Identity = jsonValue(identity)
	d.Twin = jsonValue(twin)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updatedAt)
	return d, err
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deviceArgs are the arguments of deviceInsertQuery and deviceUpdateQuery.
func deviceArgs(d *store.Device) []any {
	return appendDeviceArgs(make([]any, 0, deviceColumnCount), d)
}

const deviceColumnCount = 10

func appendDeviceArgs(args []any, d *store.Device) []any {
	return append(args, d.Hub, d.DeviceID, d.ModuleID, boolArg(d.Enabled), jsonArg(d.Identity), jsonArg(d.Twin),
		d.ETag, d.TwinETag, toMicros(d.CreatedAt), toMicros(d.UpdatedAt))
}

// deviceName names an entry in errors, the way IoT Hub paths do.
func deviceName(hub, deviceID, moduleID string) string {
	if moduleID == "" {
		return hub + "/devices/" + deviceID
	}
	return hub + "/devices/" + deviceID + "/modules/" + moduleID
}

// IoT Hub's etags are base64 text: an identity's encodes a decimal number
// ("MA==" is "0"), a twin's a big-endian int64 ("AAAAAAAAAAE="). These keep
// the shapes but use random numbers: a per-entry counter would start again
// after a delete and re-create, and a stale If-Match would then match the
// new entry.
func newIdentityETag() string {
	var b [8]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(strconv.AppendUint(nil, binary.BigEndian.Uint64(b[:]), 10))
}

func newTwinETag() string {
	var b [8]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// sameJSON tells whether a write would store the same document: nil is
// stored as NULL, so it differs from an empty document.
func sameJSON(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// cloneDevice copies d deeply enough that an updater scribbling on the copy
// cannot change what the change detection compares against.
func cloneDevice(d store.Device) store.Device {
	d.Identity = bytes.Clone(d.Identity)
	d.Twin = bytes.Clone(d.Twin)
	return d
}

// settleCreate fills in what the backend owns on a new entry.
func settleCreate(d *store.Device, t time.Time) {
	d.ETag, d.TwinETag = newIdentityETag(), newTwinETag()
	d.CreatedAt, d.UpdatedAt = t, t
}

// settleUpdate fills in what the backend owns on next, the updated version
// of current, and reports whether anything changed that needs writing. Each
// etag changes only with what it covers, so a twin write does not break an
// If-Match on the identity and the other way round.
func settleUpdate(next *store.Device, current *store.Device, t time.Time) bool {
	identityChanged := next.Enabled != current.Enabled || !sameJSON(next.Identity, current.Identity)
	twinChanged := !sameJSON(next.Twin, current.Twin)
	next.ETag, next.TwinETag = current.ETag, current.TwinETag
	next.CreatedAt, next.UpdatedAt = current.CreatedAt, current.UpdatedAt
	if identityChanged {
		next.ETag = newIdentityETag()
	}
	if twinChanged {
		next.TwinETag = newTwinETag()
	}
	if !identityChanged && !twinChanged {
		return false
	}
	next.UpdatedAt = t
	return true
}

func (ds devices) Create(ctx context.Context, d store.Device) (store.Device, error) {
	d.Hub = store.Key(d.Hub)
	name := deviceName(d.Hub, d.DeviceID, d.ModuleID)
	switch {
	case d.Hub == "":
		return store.Device{}, fmt.Errorf("sqlstore: create device %s: %w", name, errEmptyHub)
	case d.DeviceID == "":
		return store.Device{}, fmt.Errorf("sqlstore: create device %s: empty device id", name)
	}
	settleCreate(&d, now())
	insert := func(exec func(ctx context.Context, query string, args ...any) (sql.Result, error)) error {
		res, err := exec(ctx, deviceInsertQuery, deviceArgs(&d)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	}
	var err error
	if d.ModuleID == "" {
		// A device depends on nothing: one statement, no transaction.
		err = insert(ds.s.writer.ExecContext)
	} else {
		err = ds.s.inTx(ctx, func(tx *sql.Tx) error {
			// The shared lock keeps the device from being deleted before
			// this transaction ends; a delete that got there first has
			// removed the row, and the module has no device.
			var one int
			err := tx.QueryRowContext(ctx,
				`SELECT 1 FROM devices WHERE hub = $1 AND device_id = $2 AND module_id = ''`+ds.s.dialect.forKeyShare,
				d.Hub, d.DeviceID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("device %s: %w", d.DeviceID, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			return insert(tx.ExecContext)
		})
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlstore: create device %s: %w", name, err)
	}
	return d, nil
}

func (ds devices) Get(ctx context.Context, hub, deviceID, moduleID string) (store.Device, error) {
	hub = store.Key(hub)
	d, err := scanDevice(ds.s.db.QueryRowContext(ctx, deviceGetQuery, hub, deviceID, moduleID))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlstore: get device %s: %w", deviceName(hub, deviceID, moduleID), err)
	}
	return d, nil
}

func (ds devices) Update(ctx context.Context, hub, deviceID, moduleID string, update func(d *store.Device) error) (store.Device, error) {
	hub = store.Key(hub)
	var next store.Device
	err := ds.s.inTx(ctx, func(tx *sql.Tx) error {
		current, err := scanDevice(tx.QueryRowContext(ctx, deviceGetQuery+ds.s.dialect.forUpdate, hub, deviceID, moduleID))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		next = cloneDevice(current)
		if err := update(&next); err != nil {
			return err
		}
		if next.Hub != current.Hub || next.DeviceID != current.DeviceID || next.ModuleID != current.ModuleID {
			return fmt.Errorf("updater moved the entry to %s", deviceName(next.Hub, next.DeviceID, next.ModuleID))
		}
		if !settleUpdate(&next, &current, now()) {
			return nil
		}
		_, err = tx.ExecContext(ctx, deviceUpdateQuery, deviceArgs(&next)...)
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlstore: update device %s: %w", deviceName(hub, deviceID, moduleID), err)
	}
	return next, nil
}

func (ds devices) Delete(ctx context.Context, hub, deviceID, moduleID, ifMatch string) error {
	hub = store.Key(hub)
	err := ds.s.inTx(ctx, func(tx *sql.Tx) error {
		var etag string
		err := tx.QueryRowContext(ctx,
			`SELECT etag FROM devices WHERE hub = $1 AND device_id = $2 AND module_id = $3`+ds.s.dialect.forUpdate,
			hub, deviceID, moduleID).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != "*" && ifMatch != etag {
			return store.ErrPreconditionFailed
		}
		if moduleID != "" {
			_, err = tx.ExecContext(ctx, moduleDeleteQuery, hub, deviceID, moduleID)
			return err
		}
		// The device's row is locked now, and Create of a module holds a
		// shared lock on it, so every module create that got in first has
		// committed. In PostgreSQL this DELETE, a new statement, sees them
		// and leaves no orphans; later module creates find no device.
		_, err = tx.ExecContext(ctx, deviceDeleteQuery, hub, deviceID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete device %s: %w", deviceName(hub, deviceID, moduleID), err)
	}
	return nil
}

// deviceListQuery builds List's query; TestDeviceQueriesUseIndexes holds
// it to the primary key's index.
func deviceListQuery(filter store.DeviceFilter) (string, []any) {
	args := []any{store.Key(filter.Hub)}
	where := []string{"hub = $1"}
	add := func(cond string, values ...any) {
		for _, v := range values {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, cond)
	}
	if filter.Modules {
		add("module_id <> ''")
	} else {
		add("module_id = ''")
	}
	after := filter.After
	if filter.DeviceID != "" {
		add("device_id = ?", filter.DeviceID)
		// Paging through one device's modules needs only AfterModule: an
		// After left empty would otherwise sort before every device id
		// and make AfterModule meaningless, repeating the first page.
		if after == "" && filter.AfterModule != "" {
			after = filter.DeviceID
		}
	}
	switch {
	case after == "" && filter.AfterModule == "":
	case filter.DeviceID != "" && after == filter.DeviceID:
		// Within one device the row-value test narrows to module_id,
		// which the index serves without sorting.
		add("module_id > ?", filter.AfterModule)
	default:
		// Row values compare lexicographically, and both databases
		// use them as one range of the index.
		add("(device_id, module_id) > (?, ?)", after, filter.AfterModule)
	}
	query := `SELECT ` + deviceColumns + ` FROM devices WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY device_id, module_id`
	if filter.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(filter.Limit)
	}
	return query, args
}

func (ds devices) List(ctx context.Context, filter store.DeviceFilter) ([]store.Device, error) {
	if filter.Hub == "" {
		return nil, fmt.Errorf("sqlstore: list devices: %w", errEmptyHub)
	}
	query, args := deviceListQuery(filter)
	return queryAll(ctx, ds.s.db, "list devices of "+store.Key(filter.Hub), scanDevice, query, args...)
}

func (ds devices) Count(ctx context.Context, hub string) (store.DeviceCounts, error) {
	hub = store.Key(hub)
	var c store.DeviceCounts
	if hub == "" {
		return c, fmt.Errorf("sqlstore: count devices: %w", errEmptyHub)
	}
	if err := ds.s.db.QueryRowContext(ctx, deviceCountQuery, hub).Scan(&c.Total, &c.Enabled); err != nil {
		return store.DeviceCounts{}, fmt.Errorf("sqlstore: count devices of %s: %w", hub, err)
	}
	c.Disabled = c.Total - c.Enabled
	return c, nil
}

func (ds devices) DeleteHub(ctx context.Context, hub string) error {
	hub = store.Key(hub)
	if hub == "" {
		return fmt.Errorf("sqlstore: delete devices of hub: %w", errEmptyHub)
	}
	// Devices first, then, in a new statement, modules: deleting a device
	// row waits for the module creates that hold it, and PostgreSQL's
	// second statement then sees their modules. A single DELETE would miss
	// them (its snapshot predates them) and leave modules without their
	// device. A device created between the two statements stays, as one
	// created after DeleteHub would.
	err := ds.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE hub = $1 AND module_id = ''`, hub); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE hub = $1 AND module_id <> ''`, hub)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete devices of %s: %w", hub, err)
	}
	return nil
}
