-- Principals of the tenant. name_key and resource_key hold store.Key of
-- name and resource_id, computed in Go like the resources table's keys, so
-- "case-insensitive" means the same ASCII folding in both databases (an
-- index on lower() would fold non-ASCII letters in PostgreSQL only).
-- An empty app_id means "none" (users), hence the partial unique index; a
-- query must repeat the index's WHERE term for SQLite to use it.

CREATE TABLE principals (
    object_id    TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    resource_key TEXT NOT NULL,
    credentials  TEXT,
    etag         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX principals_app_id ON principals (app_id) WHERE app_id <> '';
CREATE UNIQUE INDEX principals_user_name ON principals (name_key) WHERE kind = 'User';
CREATE INDEX principals_resource ON principals (resource_key, object_id);
CREATE INDEX principals_kind ON principals (kind, object_id);
