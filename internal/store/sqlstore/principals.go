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

// principals implements store.Principals. Name and ResourceID are stored as
// given and as store.Key of them, like the resources table's keys.
type principals struct{ s *Store }

const principalColumns = `object_id, app_id, kind, name, resource_id, credentials, etag, created_at, updated_at`

// Lookups that token issuance and sign-in run at a high rate. Each repeats
// the WHERE term of the partial index it must use: SQLite uses a partial
// index only when the query's terms imply the index's, and PostgreSQL's
// generic plans for prepared statements cannot prove that from a parameter.
// TestPrincipalQueriesUseIndexes holds them to it.
const (
	principalByAppIDQuery = `SELECT ` + principalColumns + ` FROM principals WHERE app_id = $1 AND app_id <> ''`
	principalUserQuery    = `SELECT ` + principalColumns + ` FROM principals WHERE name_key = $1 AND kind = 'User'`
)

func scanPrincipal(row rowScanner) (store.Principal, error) {
	var (
		p                  store.Principal
		credentials        sql.NullString
		created, updatedAt int64
	)
	err := row.Scan(&p.ObjectID, &p.AppID, &p.Kind, &p.Name, &p.ResourceID, &credentials, &p.ETag, &created, &updatedAt)
	p.Credentials = jsonValue(credentials)
	p.CreatedAt = fromMicros(created)
	p.UpdatedAt = fromMicros(updatedAt)
	return p, err
}

// checkKind keeps unknown kinds out: the user-name index is partial on
// kind = 'User', so a misspelt kind would escape its uniqueness.
func checkKind(kind string) error {
	switch kind {
	case store.KindServicePrincipal, store.KindUser, store.KindManagedIdentity:
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func (ps principals) Create(ctx context.Context, p store.Principal) error {
	if p.ObjectID == "" {
		return errors.New("sqlstore: create principal: empty object id")
	}
	if err := checkKind(p.Kind); err != nil {
		return fmt.Errorf("sqlstore: create principal %s: %w", p.ObjectID, err)
	}
	t := toMicros(now())
	// DO NOTHING without a conflict target covers every unique index — the
	// object id, the app id and the user name — in both databases, and
	// settles concurrent creates without driver-specific error codes.
	res, err := ps.s.writer.ExecContext(ctx, `INSERT INTO principals (`+principalColumns+`, name_key, resource_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT DO NOTHING`,
		p.ObjectID, p.AppID, p.Kind, p.Name, p.ResourceID, jsonArg(p.Credentials), newETag(), t, t,
		store.Key(p.Name), store.Key(p.ResourceID))
	if err != nil {
		return fmt.Errorf("sqlstore: create principal %s: %w", p.ObjectID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: create principal %s: %w", p.ObjectID, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create principal %s: object id, app id or user name taken: %w", p.ObjectID, store.ErrAlreadyExists)
	}
	return nil
}

// getOne runs a query for at most one principal; what names the lookup in
// errors.
func (ps principals) getOne(ctx context.Context, what, query string, arg string) (store.Principal, error) {
	p, err := scanPrincipal(ps.s.db.QueryRowContext(ctx, query, arg))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("sqlstore: get principal %s: %w", what, err)
	}
	return p, nil
}

func (ps principals) Get(ctx context.Context, objectID string) (store.Principal, error) {
	return ps.getOne(ctx, objectID, `SELECT `+principalColumns+` FROM principals WHERE object_id = $1`, objectID)
}

func (ps principals) GetByAppID(ctx context.Context, appID string) (store.Principal, error) {
	return ps.getOne(ctx, "by app id "+appID, principalByAppIDQuery, appID)
}

func (ps principals) GetUser(ctx context.Context, name string) (store.Principal, error) {
	return ps.getOne(ctx, "by user name "+name, principalUserQuery, store.Key(name))
}

func (ps principals) Update(ctx context.Context, objectID string, update func(p *store.Principal) error) (store.Principal, error) {
	var p store.Principal
	err := ps.s.inTx(ctx, func(tx *sql.Tx) error {
		current, err := scanPrincipal(tx.QueryRowContext(ctx,
			`SELECT `+principalColumns+` FROM principals WHERE object_id = $1`+ps.s.dialect.forUpdate, objectID))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		p = current
		if err := update(&p); err != nil {
			return err
		}
		// Tokens already issued carry these as claims, and the indexes
		// that keep them unique are not rechecked for a kind change.
		switch {
		case p.ObjectID != current.ObjectID:
			return fmt.Errorf("updater changed the object id to %q", p.ObjectID)
		case p.AppID != current.AppID:
			return fmt.Errorf("updater changed the app id from %q to %q", current.AppID, p.AppID)
		case p.Kind != current.Kind:
			return fmt.Errorf("updater changed the kind from %s to %s", current.Kind, p.Kind)
		}
		p.ETag = newETag()
		p.CreatedAt = current.CreatedAt
		p.UpdatedAt = now()
		_, err = tx.ExecContext(ctx, `UPDATE principals SET
			name = $2, name_key = $3, resource_id = $4, resource_key = $5,
			credentials = $6, etag = $7, updated_at = $8
			WHERE object_id = $1`,
			objectID, p.Name, store.Key(p.Name), p.ResourceID, store.Key(p.ResourceID),
			jsonArg(p.Credentials), p.ETag, toMicros(p.UpdatedAt))
		// Renaming a user to a taken name is the one unique violation an
		// update can cause. No ON CONFLICT exists for UPDATE, and a check
		// beforehand would miss a concurrent rename in PostgreSQL.
		if ps.s.dialect.uniqueViolation(err) {
			return fmt.Errorf("user name %q taken: %w", p.Name, store.ErrAlreadyExists)
		}
		return err
	})
	if err != nil {
		return store.Principal{}, fmt.Errorf("sqlstore: update principal %s: %w", objectID, err)
	}
	return p, nil
}

func (ps principals) Delete(ctx context.Context, objectID string) error {
	res, err := ps.s.writer.ExecContext(ctx, `DELETE FROM principals WHERE object_id = $1`, objectID)
	if err != nil {
		return fmt.Errorf("sqlstore: delete principal %s: %w", objectID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: delete principal %s: %w", objectID, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: delete principal %s: %w", objectID, store.ErrNotFound)
	}
	return nil
}

// principalListQuery builds List's query; TestPrincipalQueriesUseIndexes
// explains it.
func principalListQuery(filter store.PrincipalFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond, value string) {
		args = append(args, value)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if filter.Kind != "" {
		add("kind =", filter.Kind)
	}
	if filter.ResourceID != "" {
		add("resource_key =", store.Key(filter.ResourceID))
	}
	if filter.After != "" {
		add("object_id >", filter.After)
	}
	query := `SELECT ` + principalColumns + ` FROM principals`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY object_id`
	if filter.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(filter.Limit)
	}
	return query, args
}

func (ps principals) List(ctx context.Context, filter store.PrincipalFilter) ([]store.Principal, error) {
	query, args := principalListQuery(filter)
	return queryAll(ctx, ps.s.db, "list principals", scanPrincipal, query, args...)
}
