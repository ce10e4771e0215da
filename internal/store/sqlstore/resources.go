package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// resources implements store.Resources. Each filterable field is stored
// twice: as given, so a read returns what was written, and as store.Key of
// it, so lookups are case-insensitive and can use an index.
type resources struct{ s *Store }

const resourceColumns = `id, type, subscription, resource_group, parent_id, name, body, etag, created_at, updated_at`

// putAttempts bounds how often Put retries after losing a race to create the
// same id. A loser's retry finds the row and takes its lock, so a second
// attempt nearly always settles it.
const putAttempts = 5

// errLostCreateRace reports that another writer created the id between our
// read and our insert; Put then runs the updater again on the stored row.
var errLostCreateRace = errors.New("lost race to create")

func scanResource(row rowScanner) (store.Resource, error) {
	var (
		r                  store.Resource
		body               sql.NullString
		created, updatedAt int64
	)
	err := row.Scan(&r.ID, &r.Type, &r.Subscription, &r.ResourceGroup, &r.ParentID, &r.Name,
		&body, &r.ETag, &created, &updatedAt)
	r.Body = jsonValue(body)
	r.CreatedAt = fromMicros(created)
	r.UpdatedAt = fromMicros(updatedAt)
	return r, err
}

func (r resources) Get(ctx context.Context, id string) (store.Resource, error) {
	res, err := scanResource(r.s.db.QueryRowContext(ctx,
		`SELECT `+resourceColumns+` FROM resources WHERE id_key = $1`, store.Key(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Resource{}, fmt.Errorf("sqlstore: get resource %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("sqlstore: get resource %s: %w", id, err)
	}
	return res, nil
}

func (r resources) Put(ctx context.Context, id string, update func(current *store.Resource) (store.Resource, error)) (store.Resource, bool, error) {
	if id == "" {
		return store.Resource{}, false, errors.New("sqlstore: put resource: empty id")
	}
	for attempt := 1; ; attempt++ {
		stored, created, err := r.put(ctx, id, update)
		if errors.Is(err, errLostCreateRace) && attempt < putAttempts {
			r.s.log.Debug("retrying put after concurrent create", "id", id, "attempt", attempt)
			continue
		}
		if err != nil {
			return store.Resource{}, false, fmt.Errorf("sqlstore: put resource %s: %w", id, err)
		}
		return stored, created, nil
	}
}

// put is one attempt of Put: read the row with a write lock, let update
// decide, write the result.
func (r resources) put(ctx context.Context, id string, update func(current *store.Resource) (store.Resource, error)) (next store.Resource, created bool, err error) {
	key := store.Key(id)
	err = r.s.inTx(ctx, func(tx *sql.Tx) error {
		current, err := scanResource(tx.QueryRowContext(ctx,
			`SELECT `+resourceColumns+` FROM resources WHERE id_key = $1`+r.s.dialect.forUpdate, key))
		var currentPtr *store.Resource
		switch {
		case err == nil:
			// The updater gets its own copy: it may scribble on it.
			cp := current
			currentPtr = &cp
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if next, err = update(currentPtr); err != nil {
			return err
		}
		if next.ID != "" && store.Key(next.ID) != key {
			return fmt.Errorf("updater returned id %q", next.ID)
		}

		t := now()
		next.ETag = newETag()
		next.UpdatedAt = t
		if currentPtr != nil {
			// The id keeps the spelling it was created with.
			next.ID = current.ID
			next.CreatedAt = current.CreatedAt
			_, err := tx.ExecContext(ctx, `UPDATE resources SET
				type = $2, type_key = $3, subscription = $4, subscription_key = $5,
				resource_group = $6, resource_group_key = $7, parent_id = $8, parent_key = $9,
				name = $10, body = $11, etag = $12, updated_at = $13
				WHERE id_key = $1`,
				key, next.Type, store.Key(next.Type), next.Subscription, store.Key(next.Subscription),
				next.ResourceGroup, store.Key(next.ResourceGroup), next.ParentID, store.Key(next.ParentID),
				next.Name, jsonArg(next.Body), next.ETag, toMicros(t))
			return err
		}

		if next.ID == "" {
			next.ID = id
		}
		next.CreatedAt = t
		created = true
		// DO NOTHING rather than a unique violation: a PostgreSQL
		// transaction survives it, and the loser learns of the race from
		// the row count instead of from driver-specific error codes.
		res, err := tx.ExecContext(ctx, `INSERT INTO resources (id_key, `+resourceColumns+`,
				type_key, subscription_key, resource_group_key, parent_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id_key) DO NOTHING`,
			key, next.ID, next.Type, next.Subscription, next.ResourceGroup, next.ParentID, next.Name,
			jsonArg(next.Body), next.ETag, toMicros(t), toMicros(t),
			store.Key(next.Type), store.Key(next.Subscription), store.Key(next.ResourceGroup), store.Key(next.ParentID))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errLostCreateRace
		}
		return nil
	})
	if err != nil {
		return store.Resource{}, false, err
	}
	return next, created, nil
}

func (r resources) Delete(ctx context.Context, id string, ifMatch string) error {
	key := store.Key(id)
	err := r.s.inTx(ctx, func(tx *sql.Tx) error {
		var etag string
		err := tx.QueryRowContext(ctx,
			`SELECT etag FROM resources WHERE id_key = $1`+r.s.dialect.forUpdate, key).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != etag {
			return store.ErrPreconditionFailed
		}
		// The subtree is every key starting with key+"/", which in bytewise
		// order is exactly the range [key+"/", key+"0") since '0' follows
		// '/'. A range is an index scan and, unlike LIKE, has no wildcards
		// for '_' or '%' in names to trip over. Both schemas order these
		// columns bytewise (SQLite BINARY, PostgreSQL COLLATE "C").
		_, err = tx.ExecContext(ctx,
			`DELETE FROM resources WHERE id_key = $1 OR (id_key >= $2 AND id_key < $3)`,
			key, key+"/", key+"0")
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete resource %s: %w", id, err)
	}
	return nil
}

func (r resources) List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond, value string) {
		args = append(args, value)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if filter.Subscription != "" {
		add("subscription_key =", store.Key(filter.Subscription))
	}
	if filter.ResourceGroup != "" {
		add("resource_group_key =", store.Key(filter.ResourceGroup))
	}
	if filter.ParentID != "" {
		add("parent_key =", store.Key(filter.ParentID))
	}
	if filter.Type != "" {
		add("type_key =", store.Key(filter.Type))
	}
	if filter.After != "" {
		add("id_key >", store.Key(filter.After))
	}
	query := `SELECT ` + resourceColumns + ` FROM resources`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id_key`
	if filter.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(filter.Limit)
	}

	return queryAll(ctx, r.s.db, "list resources", scanResource, query, args...)
}
