-- SQLite compares TEXT bytewise (BINARY collation), which is what the key
-- range scans in resources.go rely on. Times are Unix microseconds.

CREATE TABLE resources (
    id_key             TEXT PRIMARY KEY,
    id                 TEXT NOT NULL,
    type               TEXT NOT NULL,
    type_key           TEXT NOT NULL,
    subscription       TEXT NOT NULL,
    subscription_key   TEXT NOT NULL,
    resource_group     TEXT NOT NULL,
    resource_group_key TEXT NOT NULL,
    parent_id          TEXT NOT NULL,
    parent_key         TEXT NOT NULL,
    name               TEXT NOT NULL,
    body               TEXT,
    etag               TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX resources_scope ON resources (subscription_key, resource_group_key, id_key);
CREATE INDEX resources_parent ON resources (parent_key, id_key);
CREATE INDEX resources_type ON resources (type_key, id_key);

CREATE TABLE operations (
    id          TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    terminal    INTEGER NOT NULL,
    error       TEXT,
    start_time  INTEGER NOT NULL,
    end_time    INTEGER NOT NULL,
    input       TEXT
);
CREATE INDEX operations_unfinished ON operations (start_time, id) WHERE terminal = 0;

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
