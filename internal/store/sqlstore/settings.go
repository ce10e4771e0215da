package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/outpost-iot/outpost/internal/store"
)

// settings implements store.Settings; values are stored verbatim as text.
type settings struct{ s *Store }

func (st settings) Get(ctx context.Context, key string) (json.RawMessage, error) {
	var value string
	err := st.s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get setting %s: %w", key, err)
	}
	return json.RawMessage(value), nil
}

func (st settings) SetIfAbsent(ctx context.Context, key string, value json.RawMessage) (json.RawMessage, error) {
	var stored string
	err := st.s.inTx(ctx, func(tx *sql.Tx) error {
		// A concurrent inserter of the same key makes PostgreSQL's
		// DO NOTHING wait for its commit, so the SELECT, a new statement
		// with a new snapshot, sees the winner's value.
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			key, string(value)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, key).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: set setting %s if absent: %w", key, err)
	}
	return json.RawMessage(stored), nil
}

func (st settings) Set(ctx context.Context, key string, value json.RawMessage) error {
	if _, err := st.s.writer.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
		key, string(value)); err != nil {
		return fmt.Errorf("sqlstore: set setting %s: %w", key, err)
	}
	return nil
}

// Update runs update exactly once, under a lock on the key's row. A row that
// does not exist cannot be locked with SELECT … FOR UPDATE, so an absent key
// is first claimed with a placeholder row that no one else sees: a
// concurrent Update of the same key then waits in its own INSERT until this
// transaction ends and finds the committed row (or, after a rollback, claims
// the key itself). An existing row makes the INSERT do nothing.
func (st settings) Update(ctx context.Context, key string, update func(current json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	var next json.RawMessage
	err := st.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO settings (name, value) VALUES ($1, '') ON CONFLICT (name) DO NOTHING`, key)
		if err != nil {
			return err
		}
		claimed, err := res.RowsAffected()
		if err != nil {
			return err
		}
		var current json.RawMessage
		if claimed == 0 {
			var value string
			if err := tx.QueryRowContext(ctx,
				`SELECT value FROM settings WHERE name = $1`+st.s.dialect.forUpdate, key).Scan(&value); err != nil {
				return err
			}
			current = json.RawMessage(value)
		}
		if next, err = update(current); err != nil {
			return err
		}
		if next == nil {
			// The column holds a document; there is no "unset" to write.
			return errors.New("updater returned no value")
		}
		_, err = tx.ExecContext(ctx, `UPDATE settings SET value = $2 WHERE name = $1`, key, string(next))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: update setting %s: %w", key, err)
	}
	return next, nil
}
